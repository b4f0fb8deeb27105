import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `PrefixTuningConfig` with its JSON names and defaults:
///
/// ```
/// num_virtual_tokens (required), token_dim, num_layers, num_attention_heads, num_transformer_submodules,
/// encoder_hidden_size: null (filled in from the model), prefix_projection false, init_weights null | "zero"
/// (+ the common keys of prompt learning: task_type, modules_to_save, inference_mode, ...; no target_modules)
/// ```
/// The sizes PEFT fills in from the model config (`_prepare_prompt_learning_config`): `token_dim` = hidden size,
/// `num_layers` = `num_hidden_layers` (T5: the encoder's depth), `num_attention_heads`, `encoder_hidden_size` =
/// `token_dim`, `num_transformer_submodules` = 2 for `SEQ_2_SEQ_LM`, else 1 (`resolved(for:)`).
///
/// The method (`PrefixEncoder`) prepends `P = num_virtual_tokens` learned key and value positions to the
/// self-attention of every layer the model offers (`KeyValuePrefixHost`): BERT's encoder layers, T5's decoder
/// self-attention.
public struct PrefixTuningConfig: PromptLearningConfig, Equatable, Codable {
    public static let peftType = "PREFIX_TUNING"

    public var common = PeftCommonConfig()
    public var sizes = PromptLearningSizes()
    public var encoderHiddenSize: Int?
    /// Train the table through an MLP (`embedding [P, H]`, `Linear(H, E)`, tanh, `Linear(E, 2 L H)`); the file holds
    /// only the projected table either way.
    public var prefixProjection = false
    /// `"zero"`: the table (or the projection's last layer) starts at zero; null: N(0, 1) / PyTorch's init.
    public var initWeights: String?
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<PrefixTuningConfig>] {
        withSizes([.optionalInt("encoder_hidden_size", \.encoderHiddenSize), .bool("prefix_projection", \.prefixProjection),
                   .optionalString("init_weights", \.initWeights)])
    }

    public init() {}

    public init(numVirtualTokens: Int, taskType: String? = nil, prefixProjection: Bool = false, encoderHiddenSize: Int? = nil) {
        sizes.numVirtualTokens = numVirtualTokens
        self.prefixProjection = prefixProjection
        self.encoderHiddenSize = encoderHiddenSize
        common.taskType = taskType
    }

    public func validate(context: String = "PrefixTuningConfig") throws {
        try sizes.validate(context: context)
        if let e = encoderHiddenSize, e < 1 { throw ConfigError("\(context): encoder_hidden_size must be a positive integer, got \(e)") }
        if let d = tokenDim, let h = numAttentionHeads, d % h != 0 {
            throw ConfigError("\(context): token_dim \(d) is not a multiple of num_attention_heads \(h)")
        }
        if let w = initWeights, w != "zero" { throw ConfigError("\(context): init_weights must be \"zero\" or null, got \"\(w)\"") }
        // The table [P, 2 L H] and the projection's [E, H], [2 L H, E].
        try PromptLearningSizes.checkSize("num_virtual_tokens x 2 x num_layers x token_dim", [numVirtualTokens, 2, numLayers, tokenDim], context: context)
        try PromptLearningSizes.checkSize("encoder_hidden_size x 2 x num_layers x token_dim", [encoderHiddenSize, 2, numLayers, tokenDim], context: context)
    }

    /// Fills the sizes PEFT takes from the model's config (see the type's documentation).
    public func resolved(for model: Module) throws -> PrefixTuningConfig {
        let g = try PrefixEncoder.host(of: model).prefixGeometry
        var c = self
        c.sizes = sizes.resolved(tokenDim: g.tokenDim, geometry: g, taskType: taskType)
        c.encoderHiddenSize = c.encoderHiddenSize ?? c.tokenDim
        return c
    }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let encoder = try PrefixEncoder(config: try resolved(for: model), model: model, using: &rng)
        return PeftAttachment(adapters: [("", encoder)])
    }

    public var summary: String {
        "PrefixTuning  virtual_tokens=\(numVirtualTokens ?? 0)\(prefixProjection ? "  projection=\(encoderHiddenSize ?? 0)" : "")"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
