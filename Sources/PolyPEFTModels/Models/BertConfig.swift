import Foundation
import PolyPEFTCore
import PolyPEFTIO

/// The fields of a Hugging Face `BertConfig` (`config.json`) that the model uses; unknown keys are ignored.
public struct BertConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    /// `hidden_act`: `gelu` (exact), `gelu_new` / `gelu_pytorch_tanh` (tanh), `relu`, `tanh`.
    public var hiddenAct: Activation.Kind
    public var hiddenDropoutProb: Float
    public var attentionProbsDropoutProb: Float
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var initializerRange: Float
    /// Classes of the sequence-classification head (`num_labels`, or the size of `id2label`).
    public var numLabels: Int
    /// Dropout before the classifier (`classifier_dropout`, defaulting to `hidden_dropout_prob`).
    public var classifierDropout: Float

    public init(vocabSize: Int, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, intermediateSize: Int,
                hiddenAct: Activation.Kind = .gelu, hiddenDropoutProb: Float = 0.1, attentionProbsDropoutProb: Float = 0.1,
                maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2, layerNormEps: Float = 1e-12,
                initializerRange: Float = 0.02, numLabels: Int = 2, classifierDropout: Float? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.initializerRange = initializerRange
        self.numLabels = numLabels
        self.classifierDropout = classifierDropout ?? hiddenDropoutProb
    }

    /// Reads a parsed `config.json`; missing sizes and malformed values throw `ModelError`.
    public init(json: JSONValue) throws {
        let c = try JSONObjectReader(json, context: "bert config")
        let mt = try c.string("model_type", default: "bert")
        guard mt == "bert" else { throw ModelError("bert config: model_type is '\(mt)', not bert") }
        let pet = try c.string("position_embedding_type", default: "absolute")
        guard pet == "absolute" else { throw ModelError("bert config: position_embedding_type '\(pet)' is not supported (absolute)") }
        let actName = try c.string("hidden_act", default: "gelu")
        guard let act = Activation.kind(huggingFaceName: actName) else {
            let known = Activation.huggingFaceNames.map(\.name).joined(separator: ", ")
            throw ModelError("bert config: hidden_act '\(actName)' is not supported (\(known))")
        }
        let labels = try c.int("num_labels", default: nil) ?? json["id2label"]?.objectValue?.count ?? 2
        let hidden = try c.probability("hidden_dropout_prob", default: 0.1)
        self.init(vocabSize: try c.positiveInt("vocab_size"), hiddenSize: try c.positiveInt("hidden_size"),
                  numHiddenLayers: try c.positiveInt("num_hidden_layers"),
                  numAttentionHeads: try c.positiveInt("num_attention_heads"),
                  intermediateSize: try c.positiveInt("intermediate_size"), hiddenAct: act,
                  hiddenDropoutProb: hidden,
                  attentionProbsDropoutProb: try c.probability("attention_probs_dropout_prob", default: 0.1),
                  maxPositionEmbeddings: try c.int("max_position_embeddings", default: 512)!,
                  typeVocabSize: try c.int("type_vocab_size", default: 2)!,
                  layerNormEps: Float(try c.double("layer_norm_eps", default: 1e-12)),
                  initializerRange: Float(try c.double("initializer_range", default: 0.02)),
                  numLabels: labels,
                  classifierDropout: c.present("classifier_dropout") == nil ? nil : try c.probability("classifier_dropout", default: 0))
        try validate()
    }

    public init(data: Data) throws {
        let json: JSONValue
        do { json = try JSONValue(parsing: data) } catch { throw ModelError("bert config: invalid JSON: \(error)") }
        try self.init(json: json)
    }

    public func validate() throws {
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ModelError("bert config: hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        guard maxPositionEmbeddings > 0, typeVocabSize > 0 else {
            throw ModelError("bert config: max_position_embeddings and type_vocab_size must be positive")
        }
        guard numLabels > 0 else { throw ModelError("bert config: num_labels must be positive, got \(numLabels)") }
        guard layerNormEps > 0 else { throw ModelError("bert config: layer_norm_eps must be positive") }
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
}
