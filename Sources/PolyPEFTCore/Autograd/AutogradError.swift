/// Misuse of the gradient machinery that a caller can trigger (e.g. `backward()` on a non-scalar without a seed).
public struct AutogradError: PolyPEFTError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
