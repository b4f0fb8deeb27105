/// T5's attention sublayer (HF `T5LayerSelfAttention` / `T5LayerCrossAttention`): children `SelfAttention` or
/// `EncDecAttention`, `layer_norm` (RMS), pre-norm residual `h = h + dropout(attn(rms_norm(h)))`.
public final class T5LayerAttention: Module {
    public let attentionName: String

    public init(config: T5Config, cross: Bool, isDecoder: Bool, hasRelativeAttentionBias: Bool,
                using rng: inout some RandomNumberGenerator) {
        attentionName = cross ? "EncDecAttention" : "SelfAttention"
        super.init()
        addChild(attentionName, T5Attention(config: config, isDecoder: isDecoder,
                                            hasRelativeAttentionBias: hasRelativeAttentionBias, using: &rng))
        addChild("layer_norm", RMSNorm(config.dModel, eps: config.layerNormEpsilon))
        addChild("dropout", Dropout(config.dropoutRate))
    }

    public var attention: T5Attention {
        guard let a = child(attentionName) as? T5Attention else { preconditionFailure("T5: \(attentionName) replaced") }
        return a
    }

    /// h: [B, Tq, d_model] -> ([B, Tq, d_model], position bias used)
    public func forward(_ h: Variable, keyValueStates: Variable?, positionBias: Variable?, mask: Tensor?,
                        cache: KeyValueCache?, _ ctx: Context) throws -> (Variable, Variable?) {
        let normed = try layer("layer_norm").forward(h, ctx)
        let (y, bias) = try attention.forward(normed, keyValueStates: keyValueStates, positionBias: positionBias,
                                              mask: mask, cache: cache, ctx)
        return (try h + (try layer("dropout").forward(y, ctx)), bias)
    }
}

/// One T5 block (HF `T5Block`): child `layer` holding `0` self-attention, (`1` cross-attention in the decoder), and
/// the feed-forward sublayer last.
public final class T5Block: Module {
    public let isDecoder: Bool

    public init(config: T5Config, isDecoder: Bool, hasRelativeAttentionBias: Bool, using rng: inout some RandomNumberGenerator) {
        self.isDecoder = isDecoder
        super.init()
        var layers: [Module] = [T5LayerAttention(config: config, cross: false, isDecoder: isDecoder,
                                                 hasRelativeAttentionBias: hasRelativeAttentionBias, using: &rng)]
        if isDecoder {
            layers.append(T5LayerAttention(config: config, cross: true, isDecoder: true, hasRelativeAttentionBias: false,
                                           using: &rng))
        }
        layers.append(T5LayerFF(config: config, using: &rng))
        addChild("layer", ModuleList(layers))
    }

    private var sublayers: ModuleList {
        guard let l = child("layer") as? ModuleList else { preconditionFailure("T5Block: 'layer' replaced") }
        return l
    }

    /// The per-stack state a block reads and returns: position biases computed by the first block.
    public struct Biases {
        public var selfAttention: Variable?
        public var crossAttention: Variable?
    }

    /// h: [B, T, d_model] -> [B, T, d_model]
    public func forward(_ h: Variable, selfMask: Tensor?, encoderStates: Variable?, encoderMask: Tensor?,
                        biases: inout Biases, selfCache: KeyValueCache?, crossCache: KeyValueCache?,
                        _ ctx: Context) throws -> Variable {
        let l = sublayers
        guard let sa = l[0] as? T5LayerAttention, let ff = l[l.count - 1] as? T5LayerFF else {
            preconditionFailure("T5Block: sublayers replaced")
        }
        var (x, bias) = try sa.forward(h, keyValueStates: nil, positionBias: biases.selfAttention, mask: selfMask,
                                       cache: selfCache, ctx)
        biases.selfAttention = bias
        if isDecoder {
            guard let ca = l[1] as? T5LayerAttention, let encoderStates else {
                preconditionFailure("T5Block: decoder block without cross-attention or encoder states")
            }
            (x, bias) = try ca.forward(x, keyValueStates: encoderStates, positionBias: biases.crossAttention,
                                       mask: encoderMask, cache: crossCache, ctx)
            biases.crossAttention = bias
        }
        return try ff.forward(x, ctx)
    }
}
