import PolyPEFTCore

/// A problem in a configuration (a bad value, an unsupported option, a target that matches nothing), naming the
/// source, the key and the value.
public struct ConfigError: PolyPEFTError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
