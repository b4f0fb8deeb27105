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

    var encoder: T5Stack { stack("encoder") }
    var decoder: T5Stack { stack("decoder") }

    private func stack(_ name: String) -> T5Stack {
        guard let s = child(name) as? T5Stack else { preconditionFailure("T5: '\(name)' replaced") }
        return s
    }

    /// The encoder output `[B, Ts, d_model]` and its additive padding mask `[B, 1, 1, Ts]` (nil without a mask).
    public func encode(inputIDs: [[Int]], attentionMask: [[Int]]?, _ ctx: Context) throws -> (states: Variable, mask: Tensor?) {
        let (ids, b, t) = try TokenBatch.flatten(inputIDs, vocabSize: config.vocabSize, "t5 input_ids")
        let mask = try attentionMask.map { try TokenBatch.paddingMask($0, batch: b, length: t, "t5 attention_mask") }
        if let task = ctx.taskIDs, task.count != b {
            throw ModelError("t5: \(task.count) task ids for a batch of \(b)")
        }
        let states = try encoder.forward(ids: ids, batch: b, length: t, selfMask: mask, encoderStates: nil,
                                         encoderMask: nil, cache: nil, ctx)
        return (states, mask)
    }

    /// Logits `[B, Tt, vocab]` for decoder inputs given the encoder output. With a `cache`, `decoderInputIDs` are only
    /// the new positions (keys/values of earlier ones come from the cache, which is updated).
    public func decode(decoderInputIDs: [[Int]], encoderStates: Variable, encoderMask: Tensor?,
                       cache: T5DecoderCache? = nil, _ ctx: Context) throws -> Variable {
        let (ids, b, t) = try TokenBatch.flatten(decoderInputIDs, vocabSize: config.vocabSize, "t5 decoder_input_ids")
        guard encoderStates.shape.count == 3, encoderStates.shape[0] == b, encoderStates.shape[2] == config.dModel else {
            throw ModelError("t5: encoder states \(fmt(encoderStates.shape)) do not fit \(b) decoder sequences of width \(config.dModel)")
        }
        if let task = ctx.taskIDs, task.count != b {
            throw ModelError("t5: \(task.count) task ids for a decoder batch of \(b)")
        }
        var h = try decoder.forward(ids: ids, batch: b, length: t, selfMask: nil, encoderStates: encoderStates,
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
