import Foundation
import PolyPEFTCore
import PolyPEFTIO

/// The fields of a Hugging Face `T5Config` (`config.json`) that the model uses; unknown keys are ignored.
public struct T5Config: Sendable, Equatable {
    /// The feed-forward block: `relu`/`gelu` (`DenseReluDense` with `wi`, `wo`) or gated (`wi_0`, `wi_1`, `wo`).
    public enum FeedForward: Sendable, Equatable {
        case dense(Activation.Kind)
        case gated(Activation.Kind)
    }

    public var vocabSize: Int
    public var dModel: Int
    public var dKV: Int
    public var dFF: Int
    public var numLayers: Int
    public var numDecoderLayers: Int
    public var numHeads: Int
    public var relativeAttentionNumBuckets: Int
    public var relativeAttentionMaxDistance: Int
    public var dropoutRate: Float
    public var layerNormEpsilon: Float
    public var feedForward: FeedForward
    public var tieWordEmbeddings: Bool
    /// Multiply the decoder output by `d_model^-0.5` before the head (HF: `scale_decoder_outputs`, which defaults to
    /// `tie_word_embeddings` in configs that predate the key).
    public var scaleDecoderOutputs: Bool
    public var decoderStartTokenID: Int
    public var padTokenID: Int
    public var eosTokenID: Int?

    /// A config with T5's defaults for everything but the sizes.
    public init(vocabSize: Int, dModel: Int, dKV: Int, dFF: Int, numLayers: Int, numDecoderLayers: Int? = nil,
                numHeads: Int, relativeAttentionNumBuckets: Int = 32, relativeAttentionMaxDistance: Int = 128,
                dropoutRate: Float = 0.1, layerNormEpsilon: Float = 1e-6, feedForward: FeedForward = .dense(.relu),
                tieWordEmbeddings: Bool = true, scaleDecoderOutputs: Bool? = nil, decoderStartTokenID: Int = 0,
                padTokenID: Int = 0, eosTokenID: Int? = 1) {
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.dKV = dKV
        self.dFF = dFF
        self.numLayers = numLayers
        self.numDecoderLayers = numDecoderLayers ?? numLayers
        self.numHeads = numHeads
        self.relativeAttentionNumBuckets = relativeAttentionNumBuckets
        self.relativeAttentionMaxDistance = relativeAttentionMaxDistance
        self.dropoutRate = dropoutRate
        self.layerNormEpsilon = layerNormEpsilon
        self.feedForward = feedForward
        self.tieWordEmbeddings = tieWordEmbeddings
        self.scaleDecoderOutputs = scaleDecoderOutputs ?? tieWordEmbeddings
        self.decoderStartTokenID = decoderStartTokenID
        self.padTokenID = padTokenID
        self.eosTokenID = eosTokenID
    }

    /// Reads a parsed `config.json`. Missing size keys and malformed values throw `ModelError`.
    public init(json: JSONValue) throws {
        let c = try JSONObjectReader(json, context: "t5 config")
        let mt = try c.string("model_type", default: "t5")
        guard ["t5", "mt5"].contains(mt) else { throw ModelError("t5 config: model_type is '\(mt)', not t5") }
        let tie = try c.bool("tie_word_embeddings", default: true)!
        let pad = try c.int("pad_token_id", default: 0)!
        self.init(vocabSize: try c.positiveInt("vocab_size"), dModel: try c.positiveInt("d_model"),
                  dKV: try c.positiveInt("d_kv"), dFF: try c.positiveInt("d_ff"),
                  numLayers: try c.positiveInt("num_layers"),
                  numDecoderLayers: try c.int("num_decoder_layers", default: nil),
                  numHeads: try c.positiveInt("num_heads"),
                  relativeAttentionNumBuckets: try c.int("relative_attention_num_buckets", default: 32)!,
                  relativeAttentionMaxDistance: try c.int("relative_attention_max_distance", default: 128)!,
                  dropoutRate: try c.probability("dropout_rate", default: 0.1),
                  layerNormEpsilon: Float(try c.double("layer_norm_epsilon", default: 1e-6)),
                  feedForward: try T5Config.parseFeedForward(try c.string("feed_forward_proj", default: "relu")),
                  tieWordEmbeddings: tie,
                  scaleDecoderOutputs: try c.bool("scale_decoder_outputs", default: nil),
                  decoderStartTokenID: try c.int("decoder_start_token_id", default: pad)!,
                  padTokenID: pad, eosTokenID: try c.int("eos_token_id", default: 1))
        try validate()
    }

    /// Reads `config.json` bytes.
    public init(data: Data) throws {
        let json: JSONValue
        do { json = try JSONValue(parsing: data) } catch { throw ModelError("t5 config: invalid JSON: \(error)") }
        try self.init(json: json)
    }

    /// `"relu"`, `"gelu"`, `"gated-gelu"` (GELU with tanh approximation, HF's `gelu_new`), `"gated-relu"`.
    static func parseFeedForward(_ s: String) throws -> FeedForward {
        switch s {
        case "relu": return .dense(.relu)
        case "gelu": return .dense(.gelu)
        case "gelu_new": return .dense(.geluTanh)
        case "gated-gelu", "gated-gelu_new": return .gated(.geluTanh)
        case "gated-relu": return .gated(.relu)
        default:
            throw ModelError("t5 config: feed_forward_proj '\(s)' is not supported (relu, gelu, gelu_new, gated-gelu, gated-relu)")
        }
    }

    /// Checks sizes a caller could get wrong.
    public func validate() throws {
        guard numDecoderLayers > 0 else { throw ModelError("t5 config: num_decoder_layers must be positive, got \(numDecoderLayers)") }
        guard relativeAttentionNumBuckets >= 4 else {
            throw ModelError("t5 config: relative_attention_num_buckets must be at least 4, got \(relativeAttentionNumBuckets)")
        }
        guard relativeAttentionMaxDistance > relativeAttentionNumBuckets / 4 else {
            throw ModelError("t5 config: relative_attention_max_distance \(relativeAttentionMaxDistance) must exceed num_buckets / 4")
        }
        for (k, v) in [("decoder_start_token_id", decoderStartTokenID), ("pad_token_id", padTokenID)] where v < 0 || v >= vocabSize {
            throw ModelError("t5 config: \(k) \(v) outside the vocabulary 0..<\(vocabSize)")
        }
        guard layerNormEpsilon > 0 else { throw ModelError("t5 config: layer_norm_epsilon must be positive") }
    }

    /// Attention width `num_heads * d_kv`.
    public var innerDim: Int { numHeads * dKV }
}
