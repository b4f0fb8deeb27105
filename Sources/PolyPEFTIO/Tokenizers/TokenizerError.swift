import PolyPEFTCore

/// A `tokenizer.json` that cannot be used (an unsupported component, a missing token, a bad value), or text that
/// cannot be encoded as asked; the message names the file and key where one is at fault.
public struct TokenizerError: PolyPEFTError, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
