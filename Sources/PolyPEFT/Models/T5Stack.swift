/// The decoder's cache for incremental decoding: per block, self-attention keys/values (growing) and cross-attention
/// keys/values (computed once from the encoder output).
public final class T5DecoderCache {
    public let selfAttention: [KeyValueCache]
    public let crossAttention: [KeyValueCache]

    public init(layers: Int) {
        selfAttention = (0..<layers).map { _ in KeyValueCache() }
        crossAttention = (0..<layers).map { _ in KeyValueCache() }
    }

    /// Positions already decoded.
    public var length: Int { selfAttention.first?.key?.shape[2] ?? 0 }

    /// Keeps batch rows `indices` (beam search).
    public func reorder(_ indices: [Int]) throws {
        for c in selfAttention + crossAttention { try c.reorder(indices) }
    }
}

/// An encoder or decoder stack (HF `T5Stack`): children `embed_tokens` (the shared table), `block.N`,
/// `final_layer_norm`, `dropout`. The first block owns the relative position bias; later blocks reuse it.
public final class T5Stack: Module {
    public let isDecoder: Bool
    public let config: T5Config

    public init(config: T5Config, isDecoder: Bool, embedding: Parameter, using rng: inout some RandomNumberGenerator) {
        self.isDecoder = isDecoder
        self.config = config
        super.init()
        addChild("embed_tokens", Embedding(weight: embedding))
        let n = isDecoder ? config.numDecoderLayers : config.numLayers
        addChild("block", ModuleList((0..<n).map {
            T5Block(config: config, isDecoder: isDecoder, hasRelativeAttentionBias: $0 == 0, using: &rng)
        }))
        addChild("final_layer_norm", RMSNorm(config.dModel, eps: config.layerNormEpsilon))
        addChild("dropout", Dropout(config.dropoutRate))
    }

    var blocks: [T5Block] {
        guard let l = child("block") as? ModuleList else { preconditionFailure("T5Stack: 'block' replaced") }
        return (0..<l.count).map {
            guard let b = l[$0] as? T5Block else { preconditionFailure("T5Stack: block \($0) replaced") }
            return b
        }
    }

    /// ids (row-major `[B, T]`, already validated) -> hidden states `[B, T, d_model]`.
    ///
    /// Encoder: `selfMask` is the padding mask. Decoder: the causal mask is built here (offset by the cache length)
    /// and combined with `selfMask` when given; `encoderStates`/`encoderMask` feed cross-attention.
    public func forward(ids: [Int], batch: Int, length: Int, selfMask: Tensor?, encoderStates: Variable?,
                        encoderMask: Tensor?, cache: T5DecoderCache?, _ ctx: Context) throws -> Variable {
        guard let embed = child("embed_tokens") as? Embedding else { preconditionFailure("T5Stack: embed_tokens replaced") }
        var h = try embed.forward(ids: ids, shape: [batch, length], ctx)            // h: [B, T, d_model]
        h = try layer("dropout").forward(h, ctx)
        var mask = selfMask
        if isDecoder {
            let past = cache?.length ?? 0
            let causal = TokenBatch.causalMask(queryLength: length, keyLength: past + length, offset: past)
            if let m = mask { mask = try Tensor.minimum(causal, m) } else { mask = causal }
        }
        var biases = T5Block.Biases()
        for (i, block) in blocks.enumerated() {
            h = try block.forward(h, selfMask: mask, encoderStates: encoderStates, encoderMask: encoderMask,
                                  biases: &biases, selfCache: cache?.selfAttention[i], crossCache: cache?.crossAttention[i], ctx)
        }
        h = try layer("final_layer_norm").forward(h, ctx)
        return try layer("dropout").forward(h, ctx)
    }
}
