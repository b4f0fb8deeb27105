import Foundation
import PolyPEFTCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file replacement: readers see either the old file or the complete new one, never a partial write.
///
/// ```
/// 1. create  <dir>/.<name>.tmp-<16 random hex digits>   (O_CREAT | O_EXCL, same directory => same file system)
/// 2. write all bytes, fsync
/// 3. rename over <dir>/<name>                            (atomic on POSIX), then fsync the directory
/// ```
/// On any failure the temporary file is removed and the previous file (if any) is left untouched. The random suffix
/// only keeps concurrent writers apart; it does not affect any computed result.
public enum AtomicFile {
    /// Bytes written per `write(2)` call, and between calls of the `afterChunk` hook.
    public static let chunkSize = 1 << 20

    /// Atomically replaces the file at `url` with `data`.
    ///
    /// `afterChunk`, called with the number of bytes written so far after each chunk, may throw to abort the save
    /// (used to report progress, and by tests to simulate a failure mid-save).
    public static func write(_ data: Data, to url: URL, afterChunk: ((Int) throws -> Void)? = nil) throws {
        try write(parts: [data], to: url, afterChunk: afterChunk)
    }

    /// Atomically replaces the file at `url` with the concatenation of `parts`, written one after the other (so a
    /// large file need not be assembled in memory first).
    public static func write(parts: [Data], to url: URL, afterChunk: ((Int) throws -> Void)? = nil) throws {
        let target = url.standardizedFileURL
        let directory = target.deletingLastPathComponent()
        let temp = directory.appendingPathComponent(".\(target.lastPathComponent).tmp-\(String(format: "%016llx", UInt64.random(in: .min ... .max)))")
        func fail(_ what: String) -> FileFormatError {
            FileFormatError(path: target.path, "\(what) failed: \(String(cString: strerror(errno)))")
        }
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)  // minus umask, as Python's open()
        guard fd >= 0 else { throw fail("creating the temporary file \(temp.lastPathComponent)") }
        var closed = false
        do {
            var total = 0
            for part in parts {
                try part.withUnsafeBytes { raw in
                    var written = 0
                    while written < raw.count {
                        let r = posixWrite(fd, raw.baseAddress! + written, min(chunkSize, raw.count - written))
                        if r < 0 {
                            if errno == EINTR { continue }
                            throw fail("writing the temporary file")
                        }
                        written += r
                        total += r
                        try afterChunk?(total)
                    }
                }
            }
            if total == 0 { try afterChunk?(0) }
            guard fsync(fd) == 0 else { throw fail("fsync of the temporary file") }
            closed = true
            guard close(fd) == 0 else { throw fail("closing the temporary file") }
            guard rename(temp.path, target.path) == 0 else { throw fail("renaming the temporary file over the target") }
        } catch {
            if !closed { close(fd) }
            unlink(temp.path)
            throw error
        }
        // Make the rename itself durable; failure here cannot undo the (complete) new file, so it is not an error.
        syncDirectory(directory)
    }

    /// Flushes a directory's entries (renames, creations) to disk; best effort, as a failure cannot be undone.
    static func syncDirectory(_ directory: URL) {
        let dirFD = open(directory.path, O_RDONLY | O_CLOEXEC)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
    }

    /// Removes the temporary files (`.<name>.tmp-<16 hex digits>`) that interrupted writes of the files `names`
    /// left in `directory` (other writers' temporaries in the same folder are left alone). Call it only while no
    /// other writer writes those files (e.g. under a lock).
    public static func removeLeftovers(in directory: URL, of names: [String]) throws {
        for entry in try LeftoverScan.entries(of: directory)
        where names.contains(where: { LeftoverScan.isTemporary(entry, of: $0, digits: .hex16) }) {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(entry))
        }
    }

    /// Atomically writes `text` as UTF-8.
    public static func write(_ text: String, to url: URL) throws {
        try write(Data(text.utf8), to: url)
    }
}

/// `write(2)` under a name that does not clash with `AtomicFile.write`.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}

/// Recognises the temporary names of `AtomicFile` and `AtomicDirectory` (`.<name>.tmp-<suffix>`).
enum LeftoverScan {
    enum Digits { case hex16, decimal }

    /// The names in `directory` (empty when it does not exist).
    static func entries(of directory: URL) throws -> [String] {
        guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
        do { return try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw FileFormatError(path: directory.path, "cannot list the folder: \(error.localizedDescription)")
        }
    }

    /// True for `.<name>.tmp-<suffix>` (any name when `name` is nil) with a suffix of the given digits.
    static func isTemporary(_ entry: String, of name: String?, digits: Digits) -> Bool {
        guard entry.hasPrefix("."), let r = entry.range(of: ".tmp-", options: .backwards) else { return false }
        let stem = entry[entry.index(after: entry.startIndex)..<r.lowerBound], suffix = entry[r.upperBound...]
        guard !stem.isEmpty, name == nil || stem == name! else { return false }
        switch digits {
        case .hex16: return suffix.count == 16 && suffix.allSatisfy(\.isHexDigit)
        case .decimal: return !suffix.isEmpty && suffix.count <= 20 && suffix.allSatisfy(\.isASCII) && suffix.allSatisfy(\.isNumber)
        }
    }
}
