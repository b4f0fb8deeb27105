import PolyPEFTCore
import PolyPEFTIO

/// A `Linear` initialised as HF's BERT: weight ~ N(0, initializer_range), bias 0.
func bertLinear(_ inF: Int, _ outF: Int, _ config: BertConfig, using rng: inout some RandomNumberGenerator) -> Linear {
    try! Linear(weight: Tensor.normal([outF, inF], std: config.initializerRange, using: &rng), bias: Tensor.zeros([outF]))
}

/// HF `BertSelfAttention`: children `query`, `key`, `value` (looked up by name at every call, so adapters run), and a
/// prefix slot (`AttentionPrefixHost`, the adapters library's prefix tuning).
///
/// ```
/// ctx = softmax(q k^T / sqrt(d) + mask) v        // per head; [B, T, H]
/// ```
public final class BertSelfAttention: Module, AttentionPrefixHost {
    public let numHeads: Int
    public let headDim: Int
    public let dropoutRate: Float

    public init(config: BertConfig, using rng: inout some RandomNumberGenerator) {
        numHeads = config.numAttentionHeads
        headDim = config.headDim
        dropoutRate = config.attentionProbsDropoutProb
        super.init()
        for name in ["query", "key", "value"] { addChild(name, bertLinear(config.hiddenSize, config.hiddenSize, config, using: &rng)) }
    }

    public var inputSize: Int { numHeads * headDim }
    public var keyValueHeads: Int { numHeads }
    public var keyValueHeadDim: Int { headDim }

    /// x: [B, T, H], mask: additive [B, 1, 1, P + T], prefix: keys/values of P positions before the sequence's
    /// (PEFT's prefix tuning); the slot's prefix (`AttentionPrefixHost`) goes before those -> [B, T, H]
    public func forward(_ x: Variable, mask: Tensor?, prefix: KeyValuePrefix? = nil, _ ctx: Context) throws -> Variable {
        let (b, t) = (x.shape[0], x.shape[1])
        func heads(_ name: String) throws -> Variable {                     // [B, heads, T, d]
            try layer(name).forward(x, ctx).reshaped([b, t, numHeads, headDim]).permuted([0, 2, 1, 3])
        }
        // query, key, value in Hugging Face's order (what records in call order, such as gating scores, follow)
        let query = try heads("query")
        var key = try heads("key"), value = try heads("value")              // [B, heads, P + T, d] after the prefix
        if let prefix {
            let (pk, pv) = try prefix.expanded(batch: b, heads: numHeads, headDim: headDim, layer: "bert self-attention")
            key = try Variable.concatenate([pk, key], axis: 2)
            value = try Variable.concatenate([pv, value], axis: 2)
        }
        let slotted = try prefixed(key: key, value: value, mask: mask, input: x, name: "bert self-attention", ctx)
        key = slotted.key
        value = slotted.value
        let tk = key.shape[2]
        var drop: Tensor? = nil
        if ctx.isTraining && dropoutRate > 0 {
            drop = Tensor.dropoutMask([b, numHeads, t, tk], p: dropoutRate, using: &ctx.rng)
        }
        let out = try Variable.attention(query: query, key: key, value: value,
                                         mask: slotted.mask, scale: 1 / Float(headDim).squareRoot(), probabilityDropout: drop)
        return try out.permuted([0, 2, 1, 3]).reshaped([b, t, numHeads * headDim])
    }
}

/// HF `BertSelfOutput` / `BertOutput`: children `dense`, `LayerNorm`, `dropout`; `LayerNorm(dropout(dense(x)) + residual)`,
/// the join in a residual slot (`ResidualSlotHost`: `attention.output` at `mh_adapter`, `output` at `output_adapter`).
public final class BertResidualOutput: Module, ResidualSlotHost {
    public let location: SublayerLocation
    public let hiddenSize: Int

    public init(inFeatures: Int, config: BertConfig, location: SublayerLocation, using rng: inout some RandomNumberGenerator) {
        self.location = location
        hiddenSize = config.hiddenSize
        super.init()
        addChild("dense", bertLinear(inFeatures, config.hiddenSize, config, using: &rng))
        addChild("LayerNorm", LayerNorm(config.hiddenSize, eps: config.layerNormEps))
        addChild("dropout", Dropout(config.hiddenDropoutProb))
    }

    public func forward(_ x: Variable, residual: Variable, _ ctx: Context) throws -> Variable {
        let y = try layer("dropout").forward(try layer("dense").forward(x, ctx), ctx)
        return try joined(y, residual: residual, norm: try layer("LayerNorm"), ctx)
    }
}

/// HF `BertAttention`: children `self` (`BertSelfAttention`) and `output`.
public final class BertAttention: Module {
    public init(config: BertConfig, using rng: inout some RandomNumberGenerator) {
        super.init()
        addChild("self", BertSelfAttention(config: config, using: &rng))
        addChild("output", BertResidualOutput(inFeatures: config.hiddenSize, config: config, location: .attention, using: &rng))
    }

    public func forward(_ x: Variable, mask: Tensor?, prefix: KeyValuePrefix? = nil, _ ctx: Context) throws -> Variable {
        let attended = try child("self", as: BertSelfAttention.self).forward(x, mask: mask, prefix: prefix, ctx)
        return try child("output", as: BertResidualOutput.self).forward(attended, residual: x, ctx)
    }
}

/// HF `BertIntermediate`: child `dense` then the activation.
public final class BertIntermediate: Module, Layer {
    public init(config: BertConfig, using rng: inout some RandomNumberGenerator) {
        super.init()
        addChild("dense", bertLinear(config.hiddenSize, config.intermediateSize, config, using: &rng))
        addChild("intermediate_act_fn", Activation(config.hiddenAct))
    }

    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        try layer("intermediate_act_fn").forward(try layer("dense").forward(x, ctx), ctx)
    }
}

/// HF `BertLayer`: children `attention`, `intermediate`, `output`.
public final class BertLayer: Module {
    public init(config: BertConfig, using rng: inout some RandomNumberGenerator) {
        super.init()
        addChild("attention", BertAttention(config: config, using: &rng))
        addChild("intermediate", BertIntermediate(config: config, using: &rng))
        addChild("output", BertResidualOutput(inFeatures: config.intermediateSize, config: config, location: .feedForward, using: &rng))
    }

    /// x: [B, T, H] -> [B, T, H]
    public func forward(_ x: Variable, mask: Tensor?, prefix: KeyValuePrefix? = nil, _ ctx: Context) throws -> Variable {
        let a = try child("attention", as: BertAttention.self).forward(x, mask: mask, prefix: prefix, ctx)
        return try child("output", as: BertResidualOutput.self).forward(try layer("intermediate").forward(a, ctx), residual: a, ctx)
    }
}
