import PolyPEFTCore
import PolyPEFTIO

/// BERT's input embeddings (HF `BertEmbeddings`): children `word_embeddings`, `position_embeddings`,
/// `token_type_embeddings`, `LayerNorm`, `dropout`.
///
/// ```
/// e = dropout(LayerNorm(words + position[offset ..< offset+T] + token_type[types]))     // [B, T, H]
/// ```
/// `words` are `word[ids]` or input embeddings given directly (`inputs_embeds`); `offset` is the number of prefix
/// positions before the sequence (transformers' `past_key_values_length`).
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

    /// ids: validated row-major `[B, T]` -> `word[ids]`: `[B, T, H]`.
    public func words(ids: [Int], batch: Int, length: Int, _ ctx: Context) throws -> Variable {
        try child("word_embeddings", as: Embedding.self).forward(ids: ids, shape: [batch, length], ctx)
    }

    /// words: `[B, T, H]`, types: validated row-major `[B, T]` -> `[B, T, H]`.
    public func forward(words: Variable, types: [Int], positionOffset: Int = 0, _ ctx: Context) throws -> Variable {
        let (batch, length) = (words.shape[0], words.shape[1])
        guard positionOffset + length <= config.maxPositionEmbeddings else {
            throw ModelError("bert: \(positionOffset > 0 ? "\(positionOffset) prefix positions and " : "")sequence length "
                + "\(length) exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        let positions = try child("position_embeddings", as: Embedding.self)
            .forward(ids: Array(positionOffset..<(positionOffset + length)), shape: [1, length], ctx)   // [1, T, H]
        let typeRows = try child("token_type_embeddings", as: Embedding.self).forward(ids: types, shape: [batch, length], ctx)
        let sum = try (try words + positions) + typeRows
        return try layer("dropout").forward(try layer("LayerNorm").forward(sum, ctx), ctx)
    }
}
