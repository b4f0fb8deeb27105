import PolyPEFTCore

/// A safetensors file (or buffer) that cannot be read or written, or a request it cannot satisfy.
///
/// `description` is `"<file>: <message>"`, and the message names the tensor key and the numbers involved, e.g.
/// `model.safetensors: tensor "w": data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16`.
public struct SafetensorsError: PolyPEFTError, Equatable {
    /// The file path, or a name given to an in-memory buffer.
    public let file: String
    /// What went wrong.
    public let message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}
