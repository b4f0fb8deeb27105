import PolyPEFTCore
import PolyPEFTIO

/// The decoder's cache for incremental decoding: per block, self-attention keys/values (growing) and cross-attention
/// keys/values (computed once from the encoder output).
public final class T5DecoderCache {
    public let selfAttention: [KeyValueCache]
    public let crossAttention: [KeyValueCache]

    public init(layers: Int) {
        selfAttention = (0..<layers).map { _ in KeyValueCache() }
        crossAttention = (0..<layers).map { _ in KeyValueCache() }
    }

    /// Positions held: those decoded, after the prefix positions a seeded cache starts with.
    public var length: Int { selfAttention.first?.key?.shape[2] ?? 0 }
    /// Prefix positions the cache was seeded with (0 without a prefix).
    public private(set) var prefixLength = 0

    /// Seeds an empty cache with key/value prefixes, one per block (`[B, heads, P, d_kv]` each): the decoder then
    /// sees them as `P` earlier positions (causal mask and relative position bias offset by `P`).
    func seed(with prefixes: [(key: Variable, value: Variable)]) throws {
        guard length == 0 else { throw ModelError("t5: a decoder cache that already holds positions cannot take a prefix") }
        guard prefixes.count == selfAttention.count else {
            throw ModelError("t5: \(prefixes.count) key/value prefixes for \(selfAttention.count) decoder blocks")
        }
        for (c, p) in zip(selfAttention, prefixes) {
            c.key = p.key
            c.value = p.value
        }
        prefixLength = prefixes.first?.key.shape[2] ?? 0
    }

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

    /// The blocks, in order; a block replaced by another kind of module is an error.
    func blocks() throws -> [T5Block] {
        let l = try child("block", as: ModuleList.self)
        return try (0..<l.count).map {
            guard let b = l[$0] as? T5Block else {
                throw ModelError("t5: block.\($0) is a \(type(of: l[$0])), not a T5Block (it cannot be replaced)")
            }
            return b
        }
    }

    /// ids: validated row-major `[B, T]` -> `embed_tokens[ids]`: `[B, T, d_model]`.
    public func embed(ids: [Int], batch: Int, length: Int, _ ctx: Context) throws -> Variable {
        try child("embed_tokens", as: Embedding.self).forward(ids: ids, shape: [batch, length], ctx)
    }

    /// Input embeddings `[B, T, d_model]` -> hidden states `[B, T, d_model]`.
    ///
    /// Encoder: `selfMask` is the padding mask. Decoder: the causal mask is built here (offset by the cache length,
    /// prefix positions included) and combined with `selfMask` when given; `encoderStates`/`encoderMask` feed
    /// cross-attention.
    public func forward(embeds: Variable, selfMask: Tensor?, encoderStates: Variable?,
                        encoderMask: Tensor?, cache: T5DecoderCache?, _ ctx: Context) throws -> Variable {
        let length = embeds.shape[1]
        var h = try layer("dropout").forward(embeds, ctx)                           // h: [B, T, d_model]
        var mask = selfMask
        if isDecoder {
            let past = cache?.length ?? 0
            let causal = TokenBatch.causalMask(queryLength: length, keyLength: past + length, offset: past)
            if let m = mask { mask = try Tensor.minimum(causal, m) } else { mask = causal }
        }
        var biases = T5Block.Biases()
        for (i, block) in try blocks().enumerated() {
            h = try block.forward(h, selfMask: mask, encoderStates: encoderStates, encoderMask: encoderMask,
                                  biases: &biases, selfCache: cache?.selfAttention[i], crossCache: cache?.crossAttention[i], ctx)
        }
        h = try layer("final_layer_norm").forward(h, ctx)
        return try layer("dropout").forward(h, ctx)
    }
}
