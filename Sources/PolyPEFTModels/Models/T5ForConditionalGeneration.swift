import PolyPEFTCore
import PolyPEFTIO

/// Hugging Face's `T5ForConditionalGeneration`, with its module names (`shared`, `encoder.block.0.layer.0.SelfAttention.q`,
/// `decoder.block.0.layer.1.EncDecAttention.v`, `decoder.final_layer_norm`, `lm_head`, ...), so its `state_dict`
/// loads directly (`loadStateDict`) and PEFT's target modules (`q`, `v`) name the same layers.
///
/// ```
/// enc = encoder(input_ids, attention_mask)                          // [B, Ts, d_model]
/// dec = decoder(decoder_input_ids, enc)                             // [B, Tt, d_model]
/// logits = lm_head(dec * d_model^-0.5 if scale_decoder_outputs)     // [B, Tt, vocab]
/// ```
/// With tied embeddings `shared`, `encoder.embed_tokens`, `decoder.embed_tokens` and `lm_head` hold one `Parameter`.
/// Per-sample task ids travel in `ctx.taskIDs` to any injected Poly/MHR layers.
public final class T5ForConditionalGeneration: Module {

    public let config: T5Config

    /// A randomly initialised model (HF's T5 initialisation), deterministic in `seed`.
    public init(config: T5Config, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        var rng = Xoshiro256(seed: seed)
        let shared = Parameter(Tensor.normal([config.vocabSize, config.dModel], using: &rng))
        super.init()
        addChild("shared", Embedding(weight: shared))
        addChild("encoder", T5Stack(config: config, isDecoder: false, embedding: shared, using: &rng))
        addChild("decoder", T5Stack(config: config, isDecoder: true, embedding: shared, using: &rng))
        if config.tieWordEmbeddings {
            addChild("lm_head", Linear(sharing: shared))
        } else {
            addChild("lm_head", Linear(sharing: Parameter(Tensor.normal([config.vocabSize, config.dModel], using: &rng))))
        }
    }

    /// A source of key/value prefixes for the decoder's self-attention (prefix tuning), or nil.
    public var keyValuePrefix: (any KeyValuePrefixSource)?
    /// A source of virtual tokens prepended to the encoder input (prompt tuning), or nil.
    public var virtualTokens: (any VirtualTokenSource)?

    var encoder: T5Stack { get throws { try child("encoder", as: T5Stack.self) } }
    var decoder: T5Stack { get throws { try child("decoder", as: T5Stack.self) } }

    /// The encoder output `[B, Ts, d_model]` and its additive padding mask `[B, 1, 1, Ts]` (nil without a mask).
    /// With virtual tokens installed, `Ts` counts them (`P + Ts`) and the mask is extended by `P` ones.
    public func encode(inputIDs: [[Int]], attentionMask: [[Int]]?, _ ctx: Context) throws -> (states: Variable, mask: Tensor?) {
        let (ids, b, t) = try TokenBatch.flatten(inputIDs, vocabSize: config.vocabSize, "t5 input_ids")
        return try encode(inputsEmbeds: try encoder.embed(ids: ids, batch: b, length: t, ctx), attentionMask: attentionMask, ctx)
    }

    /// The same from input embeddings `[B, Ts, d_model]` (transformers' `inputs_embeds`).
    public func encode(inputsEmbeds: Variable, attentionMask: [[Int]]?, _ ctx: Context) throws -> (states: Variable, mask: Tensor?) {
        let s = inputsEmbeds.shape
        guard s.count == 3, s[0] > 0, s[1] > 0, s[2] == config.dModel else {
            throw ModelError("t5 inputs_embeds: shape \(fmt(s)) is not [B, T, \(config.dModel)]")
        }
        let b = s[0]
        var embeds = inputsEmbeds, maskRows = attentionMask
        if ctx.adaptersEnabled, let source = virtualTokens, let virtual = try source.virtualTokens(batch: b, ctx) {
            if let maskRows { try TokenBatch.checkRows(maskRows, batch: b, length: s[1], "t5 attention_mask") }
            embeds = try VirtualTokens.prepend(virtual, to: embeds, "t5")
            maskRows = VirtualTokens.extend(mask: maskRows, by: embeds.shape[1] - s[1])
        }
        let mask = try maskRows.map { try TokenBatch.paddingMask($0, batch: b, length: embeds.shape[1], "t5 attention_mask") }
        if let task = ctx.taskIDs, task.count != b {
            throw ModelError("t5: \(task.count) task ids for a batch of \(b)")
        }
        let states = try encoder.forward(embeds: embeds, selfMask: mask, encoderStates: nil, encoderMask: nil, cache: nil, ctx)
        return (states, mask)
    }

    /// Logits `[B, Tt, vocab]` for decoder inputs given the encoder output. With a `cache`, `decoderInputIDs` are only
    /// the new positions (keys/values of earlier ones come from the cache, which is updated). With key/value
    /// prefixes installed, an empty cache (or none) is first seeded with them.
    public func decode(decoderInputIDs: [[Int]], encoderStates: Variable, encoderMask: Tensor?,
                       cache: T5DecoderCache? = nil, _ ctx: Context) throws -> Variable {
        let (ids, b, t) = try TokenBatch.flatten(decoderInputIDs, vocabSize: config.vocabSize, "t5 decoder_input_ids")
        guard encoderStates.shape.count == 3, encoderStates.shape[0] == b, encoderStates.shape[2] == config.dModel else {
            throw ModelError("t5: encoder states \(fmt(encoderStates.shape)) do not fit \(b) decoder sequences of width \(config.dModel)")
        }
        if let task = ctx.taskIDs, task.count != b {
            throw ModelError("t5: \(task.count) task ids for a decoder batch of \(b)")
        }
        var cache = cache
        if let c = cache, c.length > 0, ctx.adaptersEnabled, keyValuePrefix != nil, c.prefixLength == 0 {
            throw ModelError("t5: the decoder cache was filled without the installed key/value prefix; start from an empty cache")
        }
        if (cache?.length ?? 0) == 0, ctx.adaptersEnabled, let source = keyValuePrefix, let prefixes = try source.prefixes(batch: b, ctx) {
            let g = prefixGeometry
            let seeded = cache ?? T5DecoderCache(layers: config.numDecoderLayers)
            try seeded.seed(with: prefixes.enumerated().map {
                try $0.element.expanded(batch: b, heads: g.heads, headDim: g.headDim, layer: "t5 decoder block \($0.offset) self-attention")
            })
            cache = seeded
        }
        let embeds = try decoder.embed(ids: ids, batch: b, length: t, ctx)
        var h = try decoder.forward(embeds: embeds, selfMask: nil, encoderStates: encoderStates,
                                    encoderMask: encoderMask, cache: cache, ctx)        // h: [B, Tt, d_model]
        if config.scaleDecoderOutputs { h = h * (1 / Float(config.dModel).squareRoot()) }
        return try layer("lm_head").forward(h, ctx)
    }

    /// Logits `[B, Tt, vocab]`.
    public func forward(inputIDs: [[Int]], attentionMask: [[Int]]?, decoderInputIDs: [[Int]], _ ctx: Context) throws -> Variable {
        let (states, mask) = try encode(inputIDs: inputIDs, attentionMask: attentionMask, ctx)
        return try decode(decoderInputIDs: decoderInputIDs, encoderStates: states, encoderMask: mask, ctx)
    }

    /// Mean cross-entropy over label positions (`-100` ignored), decoder inputs being the labels shifted right.
    public func loss(inputIDs: [[Int]], attentionMask: [[Int]]?, labels: [[Int]], _ ctx: Context) throws -> Variable {
        let dec = try shiftRight(labels)
        let logits = try forward(inputIDs: inputIDs, attentionMask: attentionMask, decoderInputIDs: dec, ctx)
        return try Loss.crossEntropy(logits, targets: labels.flatMap { $0 }, ignoreIndex: -100)
    }

    /// HF `_shift_right`: `[start, l0, l1, ...]` without the last label, `-100` replaced by the pad id.
    public func shiftRight(_ labels: [[Int]]) throws -> [[Int]] {
        try labels.enumerated().map { b, row in
            for (i, l) in row.enumerated() where l != -100 && (l < 0 || l >= config.vocabSize) {
                throw ModelError("t5 labels: id \(l) at [\(b), \(i)] is outside the vocabulary 0..<\(config.vocabSize)")
            }
            return ([config.decoderStartTokenID] + row.dropLast()).map { $0 == -100 ? config.padTokenID : $0 }
        }
    }
}

extension T5ForConditionalGeneration: KeyValuePrefixHost, VirtualTokenHost {
    /// The decoder blocks' self-attention takes the prefixes (the encoder and cross-attention take none, as PEFT
    /// feeds T5).
    public var prefixGeometry: PrefixGeometry {
        PrefixGeometry(layers: config.numDecoderLayers, heads: config.numHeads, headDim: config.dKV, tokenDim: config.dModel,
                       hiddenLayers: config.numLayers)
    }

    public var embeddingDim: Int { config.dModel }

    public var inputEmbeddingTable: Tensor { get throws { try child("shared", as: Embedding.self).weight.value } }
}
