import PolyPEFTCore
import PolyPEFTIO

/// `nn.LayerNorm` over the last axis: `y = (x - mean) / sqrt(var + eps) * weight + bias`.
public final class LayerNorm: Module, Layer {
    public let weight: Parameter   // [D]
    public let bias: Parameter?    // [D]
    public let eps: Float

    public init(_ features: Int, eps: Float = 1e-5, bias: Bool = true) {
        weight = Parameter(Tensor.ones([features]))
        self.bias = bias ? Parameter(Tensor.zeros([features])) : nil
        self.eps = eps
        super.init()
        addParameter("weight", weight)
        if let b = self.bias { addParameter("bias", b) }
    }

    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        try x.layerNorm(weight: ctx[weight], bias: bias.map { ctx[$0] }, eps: eps)
    }
}

extension LayerNorm: CopyableLayer {
    public func copied() -> LayerNorm {
        let c = LayerNorm(weight.value.shape[0], eps: eps, bias: bias != nil)
        c.weight.value = weight.value.contiguous()
        if let b = bias { c.bias?.value = b.value.contiguous() }
        return c
    }
}

/// T5's layer norm: RMS scaling with a weight, no mean subtraction and no bias.
public final class RMSNorm: Module, Layer {
    public let weight: Parameter   // [D]
    public let eps: Float

    public init(_ features: Int, eps: Float = 1e-6) {
        weight = Parameter(Tensor.ones([features]))
        self.eps = eps
        super.init()
        addParameter("weight", weight)
    }

    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        try x.rmsNorm(weight: ctx[weight], eps: eps)
    }
}

extension RMSNorm: CopyableLayer {
    public func copied() -> RMSNorm {
        let c = RMSNorm(weight.value.shape[0], eps: eps)
        c.weight.value = weight.value.contiguous()
        return c
    }
}
