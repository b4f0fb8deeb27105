import PolyPEFTCore

/// A problem with a file or folder outside the safetensors format itself (a missing `adapter_config.json`, a
/// shard index naming a missing file, a failed atomic write); `description` is `"<path>: <message>"`.
public struct FileFormatError: PolyPEFTError, Equatable {
    /// The file or folder concerned.
    public let path: String
    /// What went wrong.
    public let message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
