import PolyPEFTCore
import PolyPEFTIO

/// Parameter-free elementwise layers.
public final class Activation: Module, Layer {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case relu, tanh, sigmoid, gelu, geluTanh = "gelu_tanh", silu, identity
    }
    public let kind: Kind

    /// The kinds of transformers' `ACT2FN` names this library computes, by name (lower-case): `gelu` (exact),
    /// `gelu_new` and `gelu_pytorch_tanh` (tanh approximation), `relu`, `tanh`, `sigmoid`, `silu` and `swish`
    /// (x sigmoid(x)), `linear` (identity).
    public static let huggingFaceNames: [(name: String, kind: Kind)] = [
        ("gelu", .gelu), ("gelu_new", .geluTanh), ("gelu_pytorch_tanh", .geluTanh), ("relu", .relu), ("tanh", .tanh),
        ("sigmoid", .sigmoid), ("silu", .silu), ("swish", .silu), ("linear", .identity),
    ]

    /// The kind transformers' `ACT2FN[name]` computes (case-insensitive, as the adapters library looks names up), or
    /// nil for a name this library does not compute.
    public static func kind(huggingFaceName name: String) -> Kind? {
        let n = name.lowercased()
        return huggingFaceNames.first { $0.name == n }?.kind
    }

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
        case .silu: return try x * x.sigmoid()
        case .identity: return x
        }
    }
}
