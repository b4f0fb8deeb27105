import PolyPEFTCore

/// A file or folder that cannot be read or written: a malformed safetensors file or buffer (the message names the
/// tensor key and the numbers, e.g. `model.safetensors: tensor "w": data_offsets [0, 12] hold 12 bytes but F32 [2, 2]
/// needs 16`), a missing `adapter_config.json`, a shard index naming a missing file, a failed atomic write.
/// `description` is `"<path>: <message>"`; `path` is the file, or a name given to an in-memory buffer.
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
