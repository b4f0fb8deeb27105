import PolyPEFTCore
import PolyPEFTIO

/// Keys and values of one attention layer kept across decoding steps: `[B, H, T, D]` each.
public final class KeyValueCache {
    public var key: Variable?
    public var value: Variable?
    public init() {}

    /// Keeps rows `indices` of the batch (beam search reordering).
    public func reorder(_ indices: [Int]) throws {
        key = try key?.indexSelect(axis: 0, indices)
        value = try value?.indexSelect(axis: 0, indices)
    }
}

/// T5's multi-head attention (HF `T5Attention`): children `q`, `k`, `v`, `o` (bias-free `Linear`s, looked up by name
/// at every call so injected adapters run) and, in the first layer of each stack, `relative_attention_bias`
/// (`Embedding [num_buckets, H]`), and a prefix slot (`AttentionPrefixHost`). No `1/sqrt(d)` scaling.
public final class T5Attention: Module, AttentionPrefixHost {
    public let numHeads: Int
    public let dKV: Int
    public let isDecoder: Bool
    public let hasRelativeAttentionBias: Bool
    public let maxDistance: Int
    public let dropoutRate: Float
    /// The width of the input (`d_model`).
    public let inputSize: Int

    public init(config: T5Config, isDecoder: Bool, hasRelativeAttentionBias: Bool, using rng: inout some RandomNumberGenerator) {
        numHeads = config.numHeads
        dKV = config.dKV
        self.isDecoder = isDecoder
        self.hasRelativeAttentionBias = hasRelativeAttentionBias
        maxDistance = config.relativeAttentionMaxDistance
        dropoutRate = config.dropoutRate
        inputSize = config.dModel
        super.init()
        // HF's T5 initialisation: q ~ N(0, (d_model d_kv)^-1/2), k, v ~ N(0, d_model^-1/2), o ~ N(0, (H d_kv)^-1/2).
        let d = config.dModel, inner = config.innerDim
        let stds: [(String, Int, Int, Float)] = [
            ("q", inner, d, 1 / Float(d * config.dKV).squareRoot()), ("k", inner, d, 1 / Float(d).squareRoot()),
            ("v", inner, d, 1 / Float(d).squareRoot()), ("o", d, inner, 1 / Float(inner).squareRoot()),
        ]
        for (name, out, inp, std) in stds {
            addChild(name, try! Linear(weight: Tensor.normal([out, inp], std: std, using: &rng), bias: nil))
        }
        if hasRelativeAttentionBias {
            let e = Embedding(weight: Parameter(Tensor.normal([config.relativeAttentionNumBuckets, numHeads],
                                                               std: 1 / Float(d).squareRoot(), using: &rng)))
            addChild("relative_attention_bias", e)
        }
    }

    public var keyValueHeads: Int { numHeads }
    public var keyValueHeadDim: Int { dKV }

    /// The relative position bias `[1, H, Tq, Tk]` for queries at positions `offset..<offset+Tq`.
    public func positionBias(queryLength: Int, keyLength: Int, offset: Int, _ ctx: Context) throws -> Variable {
        let e = try child("relative_attention_bias", as: Embedding.self)
        return try RelativePositionBias.bias(table: ctx[e.weight], queryLength: queryLength, keyLength: keyLength,
                                             offset: offset, bidirectional: !isDecoder, maxDistance: maxDistance)
    }

    /// `x: [B, T, H*D] -> [B, H, T, D]`
    func splitHeads(_ x: Variable) throws -> Variable {
        try x.reshaped([x.shape[0], x.shape[1], numHeads, dKV]).permuted([0, 2, 1, 3])
    }

    /// Self-attention (`keyValueStates == nil`) or cross-attention over `keyValueStates` (`[B, Tk, d_model]`).
    ///
    /// - `positionBias`: the bias computed by the stack's first layer (`[1, H, Tq, Tk]`), nil to compute it here
    ///   (only layers with `relative_attention_bias`) or to use none (cross-attention). A bias whose key length is
    ///   not this layer's (the slot's prefix differs between layers, through the adapters library's `leave_out`) is
    ///   recomputed as that library does: a layer without `relative_attention_bias` then has none.
    /// - The slot's prefix (`AttentionPrefixHost`) goes before the keys after the cache is updated (the cache holds
    ///   the layer's own keys); the relative bias sees its `P` positions before the sequence's: queries at
    ///   `Tk - Tq ..< Tk` of the layer's own keys, keys `0 ..< P + Tk`, as the adapters library computes it.
    /// - `mask`: additive `[B or 1, 1, Tq or 1, Tk]` (0 or `-Float.greatestFiniteMagnitude`).
    /// - `cache`: self-attention appends this step's keys/values; cross-attention computes them once.
    /// - Returns: the output `[B, Tq, d_model]` and the position bias used (for the later layers).
    public func forward(_ x: Variable, keyValueStates: Variable? = nil, positionBias: Variable?, mask: Tensor?,
                        cache: KeyValueCache? = nil, _ ctx: Context) throws -> (output: Variable, positionBias: Variable?) {
        let (b, tq) = (x.shape[0], x.shape[1])
        let q = try splitHeads(try layer("q").forward(x, ctx))                      // q: [B, H, Tq, D]
        var k: Variable, v: Variable                                                 // [B, H, Tk, D]
        if let kvs = keyValueStates {
            if let cache, let ck = cache.key, let cv = cache.value {
                (k, v) = (ck, cv)
            } else {
                k = try splitHeads(try layer("k").forward(kvs, ctx))
                v = try splitHeads(try layer("v").forward(kvs, ctx))
                cache?.key = k
                cache?.value = v
            }
        } else {
            k = try splitHeads(try layer("k").forward(x, ctx))
            v = try splitHeads(try layer("v").forward(x, ctx))
            if let cache {
                if let ck = cache.key, let cv = cache.value {
                    k = try Variable.concatenate([ck, k], axis: 2)
                    v = try Variable.concatenate([cv, v], axis: 2)
                }
                cache.key = k
                cache.value = v
            }
        }
        let slotted = try prefixed(key: k, value: v, mask: mask, input: x, name: "t5 attention", ctx)
        (k, v) = (slotted.key, slotted.value)
        let tk = k.shape[2]
        var bias = positionBias
        if let given = bias, given.shape[3] != tk { bias = nil }
        if bias == nil && hasRelativeAttentionBias {
            bias = try self.positionBias(queryLength: tq, keyLength: tk, offset: tk - tq - slotted.length, ctx)
        }
        var dropMask: Tensor? = nil
        if ctx.isTraining && dropoutRate > 0 {
            dropMask = Tensor.dropoutMask([b, numHeads, tq, tk], p: dropoutRate, using: &ctx.rng)
        }
        let attended = try Variable.attention(query: q, key: k, value: v, bias: bias, mask: slotted.mask, scale: 1,
                                              probabilityDropout: dropMask)          // [B, H, Tq, D]
        let merged = try attended.permuted([0, 2, 1, 3]).reshaped([b, tq, numHeads * dKV])
        return (try layer("o").forward(merged, ctx), bias)
    }
}
