import PolyPEFTCore
import PolyPEFTIO

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
