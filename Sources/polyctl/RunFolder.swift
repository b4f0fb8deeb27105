import Foundation
import PolyPEFT
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A run folder claimed by one `polyctl train` for its whole life:
///
/// ```
/// 1. create the folder (and parents); a path that is a file is an error
/// 2. lock DIR/.polypeft.lock (flock, exclusive, non-blocking): a second writer gets an error naming the first's pid;
///    the kernel drops the lock when the process ends, however it ends (no stale locks after SIGKILL)
/// 3. remove what interrupted saves of the run's files left (`.checkpoint.tmp-*`, `.<run file>.tmp-*`, a redundant
///    `checkpoint.old`, a writability probe)
/// 4. new run: a folder that already holds a run is refused unless `--overwrite`, which deletes every file of the
///    old run (`runFiles`) so nothing of it (its base model, its checkpoint) can mix with the new one
/// 5. prove the folder writable, so a bad --output is reported before training, not after
/// ```
final class RunFolder {
    static let lockFileName = ".polypeft.lock"
    /// The name of the empty file that proves the folder writable (removed at once; a kill may leave one).
    static let probePrefix = ".polypeft-write-test-"
    /// Every file a run writes into its folder (pictures, the adapter, the run settings, the checkpoint).
    static let runFiles = [PeftAdapterFolder.configFileName, PeftAdapterFolder.weightsFileName, RunSpec.fileName,
                           RunSpec.baseWeightsFileName, TrainReport.allocationPicture, TrainReport.lossPicture,
                           RunCheckpoint.directoryName, RunCheckpoint.directoryName + ".old", TextBase.folderName,
                           TextBase.folderName + ".old"]
    /// The files whose presence means the folder holds a run.
    static let runMarkers = [RunSpec.fileName, RunCheckpoint.directoryName, RunCheckpoint.directoryName + ".old",
                             PeftAdapterFolder.weightsFileName]

    let url: URL
    private var fd: Int32

    private init(url: URL, fd: Int32) {
        self.url = url
        self.fd = fd
    }

    deinit { release() }

    /// Drops the lock (also done when the object goes away or the process ends).
    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    /// Claims `dir` for a new run (`resuming` false) or for continuing the run in it.
    static func claim(_ dir: URL, resuming: Bool, overwrite: Bool) throws -> RunFolder {
        let fm = FileManager.default
        if resuming {
            // Checked before locking, so that a wrong --resume leaves no lock file behind (read under the lock).
            try RunSpec.requireRunFolder(dir)
        } else {
            var isFolder: ObjCBool = false
            if fm.fileExists(atPath: dir.path, isDirectory: &isFolder), !isFolder.boolValue {
                throw CLIError.runtime("--output \(dir.path): exists and is not a folder")
            }
            do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw CLIError.runtime("--output \(dir.path): cannot create the folder (\(error.localizedDescription))")
            }
        }
        let folder = try lock(dir)
        try AtomicDirectory.removeLeftovers(of: dir.appendingPathComponent(RunCheckpoint.directoryName))
        try AtomicDirectory.removeLeftovers(of: dir.appendingPathComponent(TextBase.folderName))
        try AtomicFile.removeLeftovers(in: dir, of: runFiles)
        // A writability probe left by a killed run.
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where entry.hasPrefix(probePrefix) {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(entry))
        }
        if !resuming, let marker = runMarkers.first(where: { fm.fileExists(atPath: dir.appendingPathComponent($0).path) }) {
            guard overwrite else {
                throw CLIError.runtime("\(dir.path) already holds a run (\(marker)); continue it with 'polyctl train --resume "
                    + "\(dir.path)', or replace it with '--overwrite'")
            }
            for name in runFiles where fm.fileExists(atPath: dir.appendingPathComponent(name).path) {
                do { try fm.removeItem(at: dir.appendingPathComponent(name)) } catch {
                    throw CLIError.runtime("\(dir.path): cannot remove \(name) of the old run (\(error.localizedDescription))")
                }
            }
        }
        try checkWritable(dir)
        return folder
    }

    /// Takes the folder's lock or explains who holds it.
    private static func lock(_ dir: URL) throws -> RunFolder {
        let path = dir.appendingPathComponent(lockFileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CLIError.runtime("\(dir.path): cannot create the lock file \(lockFileName) (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            var holder = [UInt8](repeating: 0, count: 32)
            let n = busy ? pread(fd, &holder, holder.count, 0) : -1
            close(fd)
            guard busy else { throw CLIError.runtime("\(dir.path): cannot lock \(lockFileName) (\(String(cString: strerror(errno))))") }
            let pid = n > 0 ? String(decoding: holder[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            throw CLIError.runtime("\(dir.path) is in use by another 'polyctl train'\(pid.isEmpty ? "" : " (process \(pid))"); "
                + "wait for it to finish or choose another --output")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        return RunFolder(url: dir, fd: fd)
    }

    private static func checkWritable(_ dir: URL) throws {
        let probe = dir.appendingPathComponent(probePrefix + "\(getpid())")
        do {
            try Data().write(to: probe)
            try FileManager.default.removeItem(at: probe)
        } catch {
            throw CLIError.runtime("--output \(dir.path): cannot write there (\(error.localizedDescription))")
        }
    }
}
