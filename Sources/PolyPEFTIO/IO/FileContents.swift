import Foundation
import PolyPEFTCore

/// Reads a whole file, with an error that says what the path is when it is not a readable regular file:
/// `no such file`, `is a folder, not a file`, `is a FIFO, not a regular file` (reading one would block or never end),
/// `permission denied`. Every reader of user files goes through it, so none reports a bare system error code.
public enum FileContents {
    /// The bytes of the regular file at `url`, memory-mapped when `mapped` (large weight files).
    public static func read(_ url: URL, mapped: Bool = false) throws -> Data {
        let path = url.path
        try checkRegularFile(path)
        do { return try Data(contentsOf: url, options: mapped ? .alwaysMapped : []) } catch {
            let reason = access(path, R_OK) != 0 ? "permission denied" : error.localizedDescription
            throw FileFormatError(path: path, "cannot read the file (\(reason))")
        }
    }

    /// Throws unless `path` names an existing regular file (symbolic links followed).
    public static func checkRegularFile(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FileFormatError(path: path, errno == ENOENT || errno == ENOTDIR ? "no such file"
                                  : "cannot read the file (\(String(cString: strerror(errno))))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw FileFormatError(path: path, "is a folder, not a file")
        case S_IFIFO: throw FileFormatError(path: path, "is a FIFO, not a regular file")
        case S_IFSOCK: throw FileFormatError(path: path, "is a socket, not a regular file")
        default: throw FileFormatError(path: path, "is a device, not a regular file")
        }
    }
}
