import PolyPEFTCore

/// A JSON text that does not parse: the byte offset where the problem was found and what was expected.
public struct JSONError: PolyPEFTError, Equatable {
    /// What went wrong, e.g. `duplicate key "x"`.
    public let message: String
    /// Byte offset in the input where the problem was found.
    public let offset: Int

    public init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(message) at byte \(offset)" }
}
