import PolyPEFTCore
import PolyPEFTIO

/// T5's feed-forward sublayer (HF `T5LayerFF`): children `DenseReluDense` and `layer_norm` (RMS), pre-norm residual:
///
/// ```
/// h = h + dropout(ff(rms_norm(h)))                           (the join in a residual slot: `output_adapter`)
/// dense:  ff(x) = wo(dropout(act(wi(x))))                      // wi: [d_ff, d_model], wo: [d_model, d_ff]
/// gated:  ff(x) = wo(dropout(act(wi_0(x)) * wi_1(x)))         // "gated-gelu": act = gelu (tanh approximation)
/// ```
public final class T5LayerFF: Module, ResidualSlotHost {
    public var location: SublayerLocation { .feedForward }
    public let hiddenSize: Int

    public init(config: T5Config, using rng: inout some RandomNumberGenerator) {
        hiddenSize = config.dModel
        super.init()
        addChild("DenseReluDense", T5DenseActDense(config: config, using: &rng))
        addChild("layer_norm", RMSNorm(config.dModel, eps: config.layerNormEpsilon))
        addChild("dropout", Dropout(config.dropoutRate))
    }

    /// h: [B, T, d_model] -> [B, T, d_model]
    public func forward(_ h: Variable, _ ctx: Context) throws -> Variable {
        let normed = try layer("layer_norm").forward(h, ctx)
        let y = try layer("DenseReluDense").forward(normed, ctx)
        return try joined(try layer("dropout").forward(y, ctx), residual: h, norm: nil, ctx)
    }
}

/// `DenseReluDense` (HF `T5DenseActDense` or `T5DenseGatedActDense`, by config).
public final class T5DenseActDense: Module, Layer {
    public let isGated: Bool

    public init(config: T5Config, using rng: inout some RandomNumberGenerator) {
        let d = config.dModel, f = config.dFF
        let kind: Activation.Kind
        switch config.feedForward {
        case .dense(let k): kind = k; isGated = false
        case .gated(let k): kind = k; isGated = true
        }
        super.init()
        // HF's T5 initialisation: wi ~ N(0, d_model^-1/2), wo ~ N(0, d_ff^-1/2).
        func linear(_ out: Int, _ inp: Int, _ fanIn: Int) -> Linear {
            try! Linear(weight: Tensor.normal([out, inp], std: 1 / Float(fanIn).squareRoot(), using: &rng), bias: nil)
        }
        if isGated {
            addChild("wi_0", linear(f, d, d))
            addChild("wi_1", linear(f, d, d))
        } else {
            addChild("wi", linear(f, d, d))
        }
        addChild("wo", linear(d, f, f))
        addChild("dropout", Dropout(config.dropoutRate))
        addChild("act", Activation(kind))
    }

    /// x: [B, T, d_model] -> [B, T, d_model]
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        var h: Variable                                                    // h: [B, T, d_ff]
        if isGated {
            let gate = try layer("act").forward(try layer("wi_0").forward(x, ctx), ctx)
            h = try gate * (try layer("wi_1").forward(x, ctx))
        } else {
            h = try layer("act").forward(try layer("wi").forward(x, ctx), ctx)
        }
        h = try layer("dropout").forward(h, ctx)
        return try layer("wo").forward(h, ctx)
    }
}
