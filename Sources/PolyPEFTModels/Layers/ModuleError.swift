import PolyPEFTCore
import PolyPEFTIO

/// Misuse of the module tree that a caller can trigger (bad path, wrong replacement, missing weight).
public struct ModuleError: PolyPEFTError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
