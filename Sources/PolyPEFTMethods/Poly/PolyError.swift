import PolyPEFTCore

/// Errors of Poly configuration and use, naming the layer.
public struct PolyError: PolyPEFTError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
