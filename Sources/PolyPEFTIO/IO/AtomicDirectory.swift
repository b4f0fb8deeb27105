import Foundation
import PolyPEFTCore

/// Replaces a whole directory of files so that readers see either the old set or the new set, never a mix.
///
/// The new files are written into a hidden temporary sibling, flushed, then swapped in with two renames:
/// `target` -> `target.old`, `temporary` -> `target`, and `target.old` is removed. A crash between the renames leaves
/// `target.old` complete; `resolve(_:)` finds it.
public enum AtomicDirectory {
    /// Writes `files` (name -> contents) as the directory `target`, replacing any previous one.
    public static func replace(_ target: URL, with files: [String: Data]) throws {
        let fm = FileManager.default
        let parent = target.deletingLastPathComponent()
        let name = target.lastPathComponent
        let temp = parent.appendingPathComponent(".\(name).tmp-\(UInt64.random(in: 0...UInt64.max))")
        let old = parent.appendingPathComponent("\(name).old")
        do {
            try fm.createDirectory(at: temp, withIntermediateDirectories: true)
            for (file, data) in files {
                guard !file.contains("/"), !file.isEmpty else { throw FileFormatError(path: target.path, "invalid file name '\(file)'") }
                try AtomicFile.write(data, to: temp.appendingPathComponent(file))
            }
            if fm.fileExists(atPath: target.path) {
                // Only now is an older `.old` redundant: `target` is complete.
                if fm.fileExists(atPath: old.path) { try fm.removeItem(at: old) }
                try fm.moveItem(at: target, to: old)
            }
            try fm.moveItem(at: temp, to: target)
            // Make the renames durable before the old copy goes (a power cut then finds one complete directory).
            AtomicFile.syncDirectory(parent)
            if fm.fileExists(atPath: old.path) { try fm.removeItem(at: old) }
        } catch {
            try? fm.removeItem(at: temp)
            if !fm.fileExists(atPath: target.path) && fm.fileExists(atPath: old.path) { try? fm.moveItem(at: old, to: target) }
            if let e = error as? FileFormatError { throw e }
            throw FileFormatError(path: target.path, "cannot write the directory: \(error.localizedDescription)")
        }
    }

    /// Removes what interrupted replaces of `target` left behind: temporary siblings (`.<name>.tmp-<n>`, possibly
    /// incomplete) and a `<name>.old` that `target` makes redundant (a `.old` without `target` is kept: it is the
    /// complete copy `resolve(_:)` reads). Call it only while no other writer replaces `target` (e.g. under a lock).
    public static func removeLeftovers(of target: URL) throws {
        let fm = FileManager.default
        let parent = target.deletingLastPathComponent(), name = target.lastPathComponent
        for entry in try LeftoverScan.entries(of: parent) where LeftoverScan.isTemporary(entry, of: name, digits: .decimal) {
            try fm.removeItem(at: parent.appendingPathComponent(entry))
        }
        let old = parent.appendingPathComponent("\(name).old")
        if fm.fileExists(atPath: target.path) && fm.fileExists(atPath: old.path) { try fm.removeItem(at: old) }
    }

    /// The directory to read for `target`: itself, or the complete previous copy left by an interrupted replace.
    public static func resolve(_ target: URL) -> URL? {
        let fm = FileManager.default
        if fm.fileExists(atPath: target.path) { return target }
        let old = target.deletingLastPathComponent().appendingPathComponent("\(target.lastPathComponent).old")
        return fm.fileExists(atPath: old.path) ? old : nil
    }
}
