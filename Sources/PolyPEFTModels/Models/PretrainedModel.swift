import PolyPEFTCore
import PolyPEFTIO

/// A model built from a Hugging Face config, naming its `model_type` (`"bert"`, `"t5"`), which methods use to pick
/// their per-model defaults (PEFT's target-module mappings).
public protocol PretrainedModel: Module {
    var modelType: String { get }
}

extension BertModel: PretrainedModel { public var modelType: String { "bert" } }
extension BertForSequenceClassification: PretrainedModel { public var modelType: String { "bert" } }
extension T5ForConditionalGeneration: PretrainedModel { public var modelType: String { "t5" } }
