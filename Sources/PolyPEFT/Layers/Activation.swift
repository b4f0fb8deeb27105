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

/// Inverted dropout, active only in training mode, drawing its mask from the context's generator.
public final class Dropout: Module, Layer {
    public let p: Float
    public init(_ p: Float) {
        self.p = p
        super.init()
    }
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        guard ctx.isTraining && p > 0 else { return x }
        return try x.dropout(p: p, using: &ctx.rng)
    }
}

/// Layers applied in order; children are named `"0"`, `"1"`, ... as in PyTorch, unless names are given.
public final class Sequential: Module, Layer {
    public init(_ layers: [any Layer]) {
        super.init()
        for (i, l) in layers.enumerated() { addChild(String(i), l) }
    }

    public init(named layers: [(String, any Layer)]) {
        super.init()
        for (n, l) in layers { addChild(n, l) }
    }

    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        var h = x
        for (name, _) in children { h = try layer(name).forward(h, ctx) }
        return h
    }
}
