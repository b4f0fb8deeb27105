import PolyPEFTCore
import PolyPEFTIO

/// Parameter-free elementwise layers.
public final class Activation: Module, Layer {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case relu, tanh, sigmoid, gelu, geluTanh = "gelu_tanh", identity
    }
    public let kind: Kind

    public init(_ kind: Kind) {
        self.kind = kind
        super.init()
    }

    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        switch kind {
        case .relu: return x.relu()
        case .tanh: return x.tanh()
        case .sigmoid: return x.sigmoid()
        case .gelu: return x.gelu(approximation: .none)
        case .geluTanh: return x.gelu(approximation: .tanh)
        case .identity: return x
        }
    }
}
