import PolyPEFTCore
import PolyPEFTIO

/// T5's attention sublayer (HF `T5LayerSelfAttention` / `T5LayerCrossAttention`): children `SelfAttention` or
/// `EncDecAttention`, `layer_norm` (RMS), pre-norm residual `h = h + dropout(attn(rms_norm(h)))`, the join in a
/// residual slot (`mh_adapter` or `cross_adapter`).
public final class T5LayerAttention: Module, ResidualSlotHost {
    public let attentionName: String
    public let location: SublayerLocation
    public let hiddenSize: Int

    public init(config: T5Config, cross: Bool, isDecoder: Bool, hasRelativeAttentionBias: Bool,
                using rng: inout some RandomNumberGenerator) {
        attentionName = cross ? "EncDecAttention" : "SelfAttention"
        location = cross ? .crossAttention : .attention
        hiddenSize = config.dModel
        super.init()
        addChild(attentionName, T5Attention(config: config, isDecoder: isDecoder,
                                            hasRelativeAttentionBias: hasRelativeAttentionBias, using: &rng))
        addChild("layer_norm", RMSNorm(config.dModel, eps: config.layerNormEpsilon))
        addChild("dropout", Dropout(config.dropoutRate))
    }

    public var attention: T5Attention {
        get throws { try child(attentionName, as: T5Attention.self) }
    }

    /// h: [B, Tq, d_model] -> ([B, Tq, d_model], position bias used)
    public func forward(_ h: Variable, keyValueStates: Variable?, positionBias: Variable?, mask: Tensor?,
                        cache: KeyValueCache?, _ ctx: Context) throws -> (Variable, Variable?) {
        let normed = try layer("layer_norm").forward(h, ctx)
        let (y, bias) = try attention.forward(normed, keyValueStates: keyValueStates, positionBias: positionBias,
                                              mask: mask, cache: cache, ctx)
        return (try joined(try layer("dropout").forward(y, ctx), residual: h, norm: nil, ctx), bias)
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

    /// The per-stack state a block reads and returns: position biases computed by the first block.
    public struct Biases {
        public var selfAttention: Variable?
        public var crossAttention: Variable?
    }

    /// h: [B, T, d_model] -> [B, T, d_model]
    public func forward(_ h: Variable, selfMask: Tensor?, encoderStates: Variable?, encoderMask: Tensor?,
                        biases: inout Biases, selfCache: KeyValueCache?, crossCache: KeyValueCache?,
                        _ ctx: Context) throws -> Variable {
        let l = try child("layer", as: ModuleList.self)
        func sublayer<T>(_ i: Int, _ type: T.Type) throws -> T {
            guard let m = l[i] as? T else {
                throw ModelError("t5 block: layer.\(i) is a \(Swift.type(of: l[i])), not a \(T.self) (it cannot be replaced)")
            }
            return m
        }
        let sa = try sublayer(0, T5LayerAttention.self), ff = try sublayer(l.count - 1, T5LayerFF.self)
        var (x, bias) = try sa.forward(h, keyValueStates: nil, positionBias: biases.selfAttention, mask: selfMask,
                                       cache: selfCache, ctx)
        biases.selfAttention = bias
        if isDecoder {
            guard let encoderStates else { throw ModelError("t5 decoder block: no encoder states for cross-attention") }
            (x, bias) = try sublayer(1, T5LayerAttention.self).forward(x, keyValueStates: encoderStates,
                                                                         positionBias: biases.crossAttention,
                                                                         mask: encoderMask, cache: crossCache, ctx)
            biases.crossAttention = bias
        }
        return try ff.forward(x, ctx)
    }
}
