import PolyPEFTCore
import PolyPEFTIO

/// Bad model input a caller can trigger: an invalid `config.json`, token ids outside the vocabulary, masks of the
/// wrong shape, weights that do not fit. The message names the problem.
public struct ModelError: PolyPEFTError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
