/// BERT's input embeddings (HF `BertEmbeddings`): children `word_embeddings`, `position_embeddings`,
/// `token_type_embeddings`, `LayerNorm`, `dropout`.
///
/// ```
/// e = dropout(LayerNorm(word[ids] + position[0..<T] + token_type[types]))     // [B, T, H]
/// ```
public final class BertEmbeddings: Module {
    public let config: BertConfig

    public init(config: BertConfig, using rng: inout some RandomNumberGenerator) {
        self.config = config
        super.init()
        let h = config.hiddenSize, std = config.initializerRange
        for (name, n) in [("word_embeddings", config.vocabSize), ("position_embeddings", config.maxPositionEmbeddings),
                          ("token_type_embeddings", config.typeVocabSize)] {
            addChild(name, Embedding(weight: Parameter(Tensor.normal([n, h], std: std, using: &rng))))
        }
        addChild("LayerNorm", LayerNorm(h, eps: config.layerNormEps))
        addChild("dropout", Dropout(config.hiddenDropoutProb))
    }

    private func table(_ name: String) -> Embedding {
        guard let e = child(name) as? Embedding else { preconditionFailure("BertEmbeddings: '\(name)' replaced") }
        return e
    }

    /// ids and types: validated row-major `[B, T]` -> `[B, T, H]`.
    public func forward(ids: [Int], types: [Int], batch: Int, length: Int, _ ctx: Context) throws -> Variable {
        guard length <= config.maxPositionEmbeddings else {
            throw ModelError("bert: sequence length \(length) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        let words = try table("word_embeddings").forward(ids: ids, shape: [batch, length], ctx)     // [B, T, H]
        let positions = try table("position_embeddings").forward(ids: Array(0..<length), shape: [1, length], ctx)
        let typeRows = try table("token_type_embeddings").forward(ids: types, shape: [batch, length], ctx)
        let sum = try (try words + positions) + typeRows
        return try layer("dropout").forward(try layer("LayerNorm").forward(sum, ctx), ctx)
    }
}
