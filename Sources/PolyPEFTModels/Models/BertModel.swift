import PolyPEFTCore
import PolyPEFTIO

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

    /// A source of key/value prefixes for every encoder layer (prefix tuning), or nil.
    public var keyValuePrefix: (any KeyValuePrefixSource)?
    /// A source of virtual tokens prepended to the input (prompt tuning), or nil.
    public var virtualTokens: (any VirtualTokenSource)?

    /// Sequence output `[B, T, H]` and, with the pooler, the pooled first token `[B, H]`. With virtual tokens
    /// installed, `T` counts them too (`P + T`).
    public func forward(inputIDs: [[Int]], attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil,
                        _ ctx: Context) throws -> (sequence: Variable, pooled: Variable?) {
        let (ids, b, t) = try TokenBatch.flatten(inputIDs, vocabSize: config.vocabSize, "bert input_ids")
        let words = try child("embeddings", as: BertEmbeddings.self).words(ids: ids, batch: b, length: t, ctx)   // [B, T, H]
        return try encode(words: words, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx)
    }

    /// The same from input embeddings `[B, T, H]` instead of ids (transformers' `inputs_embeds`).
    public func forward(inputsEmbeds: Variable, attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil,
                        _ ctx: Context) throws -> (sequence: Variable, pooled: Variable?) {
        let s = inputsEmbeds.shape
        guard s.count == 3, s[0] > 0, s[1] > 0, s[2] == config.hiddenSize else {
            throw ModelError("bert inputs_embeds: shape \(fmt(s)) is not [B, T, \(config.hiddenSize)]")
        }
        return try encode(words: inputsEmbeds, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx)
    }

    /// words: `[B, T, H]` -> the encoder's output, with virtual tokens prepended and prefixes threaded when installed:
    ///
    /// ```
    /// virtual tokens (V):  words = cat(virtual, words); mask extended by V ones, token types by V zeros (or dropped
    ///                      unless the source keeps them)
    /// prefix (P):          positions P ..< P + T; key mask = cat(ones(B, P), mask); token types dropped unless
    ///                      the source keeps them
    /// ```
    func encode(words: Variable, attentionMask: [[Int]]?, tokenTypeIDs: [[Int]]?,
                _ ctx: Context) throws -> (sequence: Variable, pooled: Variable?) {
        let b = words.shape[0]
        var words = words, mask = attentionMask, typeRows = tokenTypeIDs
        if ctx.adaptersEnabled, let source = virtualTokens, let virtual = try source.virtualTokens(batch: b, ctx) {
            let before = words.shape[1]
            try checkRows(mask, "attention_mask", b, before)
            try checkRows(typeRows, "token_type_ids", b, before)
            words = try VirtualTokens.prepend(virtual, to: words, "bert")
            let v = words.shape[1] - before
            mask = VirtualTokens.extend(mask: mask, by: v)
            typeRows = source.keepsTokenTypes ? typeRows.map { $0.map { [Int](repeating: 0, count: v) + $0 } } : nil
        }
        let t = words.shape[1]
        let prefixes = ctx.adaptersEnabled ? try keyValuePrefix?.prefixes(batch: b, ctx) : nil
        let p = try prefixes.map { try checkPrefixes($0) } ?? 0
        if prefixes != nil && keyValuePrefix?.keepsTokenTypes == false { typeRows = nil }
        var types = [Int](repeating: 0, count: b * t)
        if let typeRows {
            try checkRows(typeRows, "token_type_ids", b, t)
            types = try TokenBatch.flatten(typeRows, vocabSize: config.typeVocabSize, "bert token_type_ids").ids
        }
        try checkRows(mask, "attention_mask", b, t)
        let keyMask = try mask.map {
            try TokenBatch.paddingMask(VirtualTokens.extend(mask: $0, by: p)!, batch: b, length: p + t, "bert attention_mask")
        }                                                                                      // [B, 1, 1, P + T]
        if let task = ctx.taskIDs, task.count != b { throw ModelError("bert: \(task.count) task ids for a batch of \(b)") }
        var h = try child("embeddings", as: BertEmbeddings.self).forward(words: words, types: types, positionOffset: p, ctx)
        let layers = try child("encoder", as: Module.self).child("layer", as: ModuleList.self)
        for i in 0..<layers.count {
            guard let l = layers[i] as? BertLayer else {
                throw ModelError("bert: encoder.layer.\(i) is a \(type(of: layers[i])), not a BertLayer (it cannot be replaced)")
            }
            h = try l.forward(h, mask: keyMask, prefix: prefixes?[i], ctx)                     // h: [B, T, H]
        }
        guard hasPooler else { return (h, nil) }
        let pooler = try child("pooler", as: Module.self)
        let first = try h.sliced(axis: 1, start: 0, end: 1).squeezed(1)                      // [B, H]
        let pooled = try pooler.layer("activation").forward(try pooler.layer("dense").forward(first, ctx), ctx)
        return (h, pooled)
    }

    /// A mask or token-type batch, when given, must have `b` rows of `t` entries.
    private func checkRows(_ rows: [[Int]]?, _ name: String, _ b: Int, _ t: Int) throws {
        if let rows { try TokenBatch.checkRows(rows, batch: b, length: t, "bert " + name) }
    }

    /// One prefix per encoder layer, all of one length; returns that length.
    private func checkPrefixes(_ prefixes: [KeyValuePrefix]) throws -> Int {
        guard prefixes.count == config.numHiddenLayers else {
            throw ModelError("bert: \(prefixes.count) key/value prefixes for \(config.numHiddenLayers) encoder layers")
        }
        let p = prefixes[0].length
        guard prefixes.allSatisfy({ $0.length == p && $0.value.shape.count == 4 && $0.value.shape[2] == p }) else {
            throw ModelError("bert: key/value prefixes of different lengths")
        }
        return p
    }
}

extension BertModel: KeyValuePrefixHost, VirtualTokenHost {
    public var prefixGeometry: PrefixGeometry { config.prefixGeometry }

    public var embeddingDim: Int { config.hiddenSize }

    public var inputEmbeddingTable: Tensor {
        get throws { try child("embeddings", as: BertEmbeddings.self).child("word_embeddings", as: Embedding.self).weight.value }
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
        let (_, pooled) = try bert.forward(inputIDs: inputIDs, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx)
        guard let pooled else { throw ModelError("bert classifier: its 'bert' has no pooler (built without addPoolingLayer)") }
        return try layer("classifier").forward(try layer("dropout").forward(pooled, ctx), ctx)
    }

    /// The encoder with its pooler (child `bert`).
    public var bert: BertModel {
        get throws { try child("bert", as: BertModel.self) }
    }

    /// Mean cross-entropy of `labels` (one class per sample).
    public func loss(inputIDs: [[Int]], attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil, labels: [Int],
                     _ ctx: Context) throws -> Variable {
        try Loss.crossEntropy(try forward(inputIDs: inputIDs, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx),
                              targets: labels)
    }
}

/// The classifier's encoder takes the prefixes and virtual tokens (installed on its `bert`).
extension BertForSequenceClassification: KeyValuePrefixHost, VirtualTokenHost {
    private var encoder: BertModel? { child("bert") as? BertModel }

    public var prefixGeometry: PrefixGeometry { config.prefixGeometry }

    public var embeddingDim: Int { config.hiddenSize }

    public var inputEmbeddingTable: Tensor { get throws { try bert.inputEmbeddingTable } }

    public var keyValuePrefix: (any KeyValuePrefixSource)? {
        get { encoder?.keyValuePrefix }
        set { encoder?.keyValuePrefix = newValue }
    }

    public var virtualTokens: (any VirtualTokenSource)? {
        get { encoder?.virtualTokens }
        set { encoder?.virtualTokens = newValue }
    }
}

extension BertConfig {
    /// Every encoder layer takes a prefix; prefix and sequence share the absolute positions.
    var prefixGeometry: PrefixGeometry {
        PrefixGeometry(layers: numHiddenLayers, heads: numAttentionHeads, headDim: headDim, tokenDim: hiddenSize,
                       positionLimit: maxPositionEmbeddings)
    }
}
