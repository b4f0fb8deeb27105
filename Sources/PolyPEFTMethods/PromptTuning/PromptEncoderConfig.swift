import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `PromptEncoderConfig` (P-tuning, `peft_type` `"P_TUNING"`) with its JSON names and defaults:
///
/// ```
/// encoder_reparameterization_type "MLP", encoder_hidden_size null (= token_dim), encoder_num_layers 2,
/// encoder_dropout 0.0   (+ the prompt-learning sizes, `PromptLearningSizes`, and the common keys without targets)
/// ```
/// Virtual tokens as in prompt tuning (`PromptEmbedding`), trained through PEFT's MLP reparameterisation:
///
/// ```
/// embedding [n P, H] ~ N(0, 1)
/// mlp_head = Linear(H, E), ReLU, Linear(E, E), ReLU, Linear(E, H)       (PyTorch's default init)
/// prompts = mlp_head(embedding)                                          [n P, H]; the saved prompt_embeddings
/// ```
/// As in PEFT, the MLP always has these three layers (`encoder_num_layers` is ignored, with a warning in PEFT) and no
/// dropout (`encoder_dropout` only acts on the LSTM form, which PolyPEFT does not implement: another
/// `encoder_reparameterization_type` is an error). The file holds the MLP's output; it loads into the direct form
/// (`inference_mode: true`, as PEFT writes it).
public struct PromptEncoderConfig: PromptLearningConfig, Equatable, Codable {
    public static let peftType = "P_TUNING"

    public var common = PeftCommonConfig()
    public var sizes = PromptLearningSizes()
    /// The MLP's width `E` (null: the model's width).
    public var encoderHiddenSize: Int?
    /// Kept and written as PEFT does; the MLP form ignores it.
    public var encoderNumLayers = 2
    /// Kept and written as PEFT does; the MLP form has no dropout.
    public var encoderDropout = 0.0
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<PromptEncoderConfig>] {
        withSizes([.optionalInt("encoder_hidden_size", \.encoderHiddenSize), .int("encoder_num_layers", \.encoderNumLayers),
                   .double("encoder_dropout", \.encoderDropout)])
    }

    public static var fixedKeys: [String: [JSONValue]] { ["encoder_reparameterization_type": ["MLP"]] }

    public init() {}

    public init(numVirtualTokens: Int, taskType: String? = nil, encoderHiddenSize: Int? = nil) {
        sizes.numVirtualTokens = numVirtualTokens
        common.taskType = taskType
        self.encoderHiddenSize = encoderHiddenSize
    }

    public func validate(context: String = "PromptEncoderConfig") throws {
        try sizes.validate(context: context)
        if let e = encoderHiddenSize, e < 1 { throw ConfigError("\(context): encoder_hidden_size must be a positive integer, got \(e)") }
        guard encoderDropout >= 0 && encoderDropout < 1 else {
            throw ConfigError("\(context): encoder_dropout must be in [0, 1), got \(encoderDropout)")
        }
        try PromptLearningSizes.checkSize("num_virtual_tokens x num_transformer_submodules x token_dim",
                                          [numVirtualTokens, numTransformerSubmodules ?? 1, tokenDim], context: context)
        try PromptLearningSizes.checkSize("encoder_hidden_size x encoder_hidden_size", [encoderHiddenSize, encoderHiddenSize], context: context)
        try PromptLearningSizes.checkSize("encoder_hidden_size x token_dim", [encoderHiddenSize, tokenDim], context: context)
    }

    /// The sizes from the model, and `encoder_hidden_size` = `token_dim` when null (PEFT).
    public func resolved(for model: Module) throws -> PromptEncoderConfig {
        var c = self
        c.sizes = try PromptEmbedding.resolvedSizes(sizes, for: model, taskType: taskType)
        c.encoderHiddenSize = c.encoderHiddenSize ?? c.tokenDim
        return c
    }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let c = try resolved(for: model)
        let host = try PromptEmbedding.host(of: model)
        let (p, total, h) = try PromptEmbedding.checkedSizes(c.sizes, host: host, model: model)
        let form: PromptTable.Form
        if c.inferenceMode {
            form = .direct(table: Parameter(Tensor.normal([total, h], using: &rng)))
        } else {
            let e = c.encoderHiddenSize ?? h
            let embedding = Parameter(Tensor.normal([total, h], using: &rng))
            let mlp = Sequential([Linear(h, e, using: &rng), Activation(.relu), Linear(e, e, using: &rng), Activation(.relu),
                                  Linear(e, h, using: &rng)])
            form = .encoded(embedding: embedding, head: mlp, headName: "mlp_head")
        }
        let source = try PromptEmbedding(virtualTokens: p, table: PromptTable(form: form, method: "P-tuning"), keepsTokenTypes: c.keepsTokenTypes, host: host)
        return PeftAttachment(adapters: [("", source)])
    }

    public var summary: String {
        "P-tuning  virtual_tokens=\(numVirtualTokens ?? 0)  encoder_hidden_size=\(encoderHiddenSize.map(String.init) ?? "(token_dim)")"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
