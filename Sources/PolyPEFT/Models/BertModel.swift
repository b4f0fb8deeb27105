/// Hugging Face's `BertModel` with its module names (`embeddings.word_embeddings`,
/// `encoder.layer.0.attention.self.query`, `encoder.layer.0.attention.output.LayerNorm`,
/// `encoder.layer.0.intermediate.dense`, `encoder.layer.0.output.dense`, `pooler.dense`, ...).
///
/// ```
/// h = encoder(embeddings(ids, types), mask)       // [B, T, H]
/// pooled = tanh(pooler.dense(h[:, 0]))            // [B, H]
/// ```
public final class BertModel: Module {
    public let config: BertConfig
    public let hasPooler: Bool

    public init(config: BertConfig, addPoolingLayer: Bool = true, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        hasPooler = addPoolingLayer
        var rng = Xoshiro256(seed: seed)
        super.init()
        addChild("embeddings", BertEmbeddings(config: config, using: &rng))
        let encoder = Module()
        encoder.addChild("layer", ModuleList((0..<config.numHiddenLayers).map { _ in BertLayer(config: config, using: &rng) }))
        addChild("encoder", encoder)
        if addPoolingLayer {
            let pooler = Module()
            pooler.addChild("dense", bertLinear(config.hiddenSize, config.hiddenSize, config, using: &rng))
            pooler.addChild("activation", Activation(.tanh))
            addChild("pooler", pooler)
        }
    }

    /// Sequence output `[B, T, H]` and, with the pooler, the pooled first token `[B, H]`.
    public func forward(inputIDs: [[Int]], attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil,
                        _ ctx: Context) throws -> (sequence: Variable, pooled: Variable?) {
        let (ids, b, t) = try TokenBatch.flatten(inputIDs, vocabSize: config.vocabSize, "bert input_ids")
        var types = [Int](repeating: 0, count: b * t)
        if let tokenTypeIDs {
            guard tokenTypeIDs.count == b else { throw ModelError("bert token_type_ids: \(tokenTypeIDs.count) rows for \(b) sequences") }
            let (flat, _, tt) = try TokenBatch.flatten(tokenTypeIDs, vocabSize: config.typeVocabSize, "bert token_type_ids")
            guard tt == t else { throw ModelError("bert token_type_ids: \(tt) entries per row for \(t) tokens") }
            types = flat
        }
        let mask = try attentionMask.map { try TokenBatch.paddingMask($0, batch: b, length: t, "bert attention_mask") }
        if let task = ctx.taskIDs, task.count != b { throw ModelError("bert: \(task.count) task ids for a batch of \(b)") }
        guard let emb = child("embeddings") as? BertEmbeddings,
              let layers = module(at: "encoder.layer") as? ModuleList else { preconditionFailure("BertModel: children replaced") }
        var h = try emb.forward(ids: ids, types: types, batch: b, length: t, ctx)              // h: [B, T, H]
        for i in 0..<layers.count {
            guard let l = layers[i] as? BertLayer else { preconditionFailure("BertModel: layer \(i) replaced") }
            h = try l.forward(h, mask: mask, ctx)
        }
        guard hasPooler, let pooler = child("pooler") else { return (h, nil) }
        let first = try h.sliced(axis: 1, start: 0, end: 1).squeezed(1)                      // [B, H]
        let pooled = try pooler.layer("activation").forward(try pooler.layer("dense").forward(first, ctx), ctx)
        return (h, pooled)
    }
}

/// HF `BertForSequenceClassification`: children `bert` (with pooler), `dropout`, `classifier` (`[num_labels, H]`).
public final class BertForSequenceClassification: Module {
    public let config: BertConfig

    public init(config: BertConfig, seed: UInt64 = 0) throws {
        self.config = config
        var rng = Xoshiro256(seed: seed &+ 0x9E37_79B9)
        super.init()
        addChild("bert", try BertModel(config: config, addPoolingLayer: true, seed: seed))
        addChild("dropout", Dropout(config.classifierDropout))
        addChild("classifier", bertLinear(config.hiddenSize, config.numLabels, config, using: &rng))
    }

    /// Logits `[B, num_labels]`.
    public func forward(inputIDs: [[Int]], attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil,
                        _ ctx: Context) throws -> Variable {
        guard let bert = child("bert") as? BertModel else { preconditionFailure("BertForSequenceClassification: 'bert' replaced") }
        let (_, pooled) = try bert.forward(inputIDs: inputIDs, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx)
        return try layer("classifier").forward(try layer("dropout").forward(pooled!, ctx), ctx)
    }

    /// Mean cross-entropy of `labels` (one class per sample).
    public func loss(inputIDs: [[Int]], attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil, labels: [Int],
                     _ ctx: Context) throws -> Variable {
        try Loss.crossEntropy(try forward(inputIDs: inputIDs, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx),
                              targets: labels)
    }
}
