import PolyPEFTCore
import PolyPEFTIO

/// A model built from a Hugging Face config, naming its `model_type` (`"bert"`, `"t5"`), which methods use to pick
/// their per-model defaults (PEFT's target-module mappings), and the transformers class it mirrors (written into
/// adapter files that record it, such as the adapters library's `model_class`).
public protocol PretrainedModel: Module {
    var modelType: String { get }
    /// The transformers class of the same structure and parameter names (`"BertModel"`).
    var huggingFaceClassName: String { get }
    /// The config's `hidden_size` (T5: `d_model`, which transformers maps `hidden_size` to).
    var hiddenSize: Int { get }
}

extension BertModel: PretrainedModel {
    public var modelType: String { "bert" }
    public var huggingFaceClassName: String { "BertModel" }
    public var hiddenSize: Int { config.hiddenSize }
}

extension BertForSequenceClassification: PretrainedModel {
    public var modelType: String { "bert" }
    public var huggingFaceClassName: String { "BertForSequenceClassification" }
    public var hiddenSize: Int { config.hiddenSize }
}

extension T5ForConditionalGeneration: PretrainedModel {
    public var modelType: String { "t5" }
    public var huggingFaceClassName: String { "T5ForConditionalGeneration" }
    public var hiddenSize: Int { config.dModel }
}
