import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The sizes every PEFT prompt-learning config has (PEFT's `PromptLearningConfig`), with their JSON names:
///
/// ```
/// num_virtual_tokens (required), token_dim, num_layers, num_attention_heads, num_transformer_submodules: null
/// ```
/// PEFT fills the nulls in from the model config (`_prepare_prompt_learning_config`), and so does `resolved(for:)`:
/// `token_dim` = hidden size, `num_layers` = `num_hidden_layers` (T5: the encoder's depth), `num_attention_heads`,
/// `num_transformer_submodules` = 2 for `SEQ_2_SEQ_LM`, else 1.
public struct PromptLearningSizes: Equatable, Sendable {
    public var numVirtualTokens: Int?
    public var tokenDim: Int?
    public var numLayers: Int?
    public var numAttentionHeads: Int?
    public var numTransformerSubmodules: Int?

    public init(numVirtualTokens: Int? = nil) { self.numVirtualTokens = numVirtualTokens }

    static var fields: [ConfigField<PromptLearningSizes>] {
        [.optionalInt("num_virtual_tokens", \.numVirtualTokens), .optionalInt("token_dim", \.tokenDim),
         .optionalInt("num_layers", \.numLayers), .optionalInt("num_attention_heads", \.numAttentionHeads),
         .optionalInt("num_transformer_submodules", \.numTransformerSubmodules)]
    }

    /// The largest table (virtual tokens x width, or a projection matrix) accepted: 2^28 floats, 1 GiB.
    public static let maxElements = 1 << 28

    /// PEFT's checks of the sizes given (null ones are filled in later).
    func validate(context: String) throws {
        guard let p = numVirtualTokens else { throw ConfigError("\(context): num_virtual_tokens must be set") }
        for (name, v) in [("num_virtual_tokens", p), ("token_dim", tokenDim), ("num_layers", numLayers),
                          ("num_attention_heads", numAttentionHeads)] {
            if let v, v < 1 { throw ConfigError("\(context): \(name) must be a positive integer, got \(v)") }
        }
        if let n = numTransformerSubmodules, n != 1 && n != 2 {
            throw ConfigError("\(context): num_transformer_submodules must be 1 or 2, got \(n)")
        }
    }

    /// Throws unless the product of `factors` (those known) stays within `maxElements`: the tables are allocated from
    /// these numbers, so they are checked for overflow and capped before anything is built.
    static func checkSize(_ what: String, _ factors: [Int?], context: String) throws {
        guard factors.allSatisfy({ $0 != nil }) else { return }
        var n = 1, overflow = false
        for f in factors { (n, overflow) = overflow ? (n, true) : n.multipliedReportingOverflow(by: f!) }
        guard !overflow, n <= maxElements else {
            throw ConfigError("\(context): \(what) = \(factors.map { String($0!) }.joined(separator: " x ")) exceeds "
                + "\(maxElements) elements (the table would not fit in memory)")
        }
    }

    /// The sizes with PEFT's model-derived defaults filled in (see the type's documentation).
    func resolved(tokenDim modelDim: Int, geometry: PrefixGeometry?, taskType: String?) -> PromptLearningSizes {
        var s = self
        s.tokenDim = s.tokenDim ?? modelDim
        s.numLayers = s.numLayers ?? geometry?.hiddenLayers
        s.numAttentionHeads = s.numAttentionHeads ?? geometry?.heads
        s.numTransformerSubmodules = s.numTransformerSubmodules ?? (taskType == "SEQ_2_SEQ_LM" ? 2 : 1)
        return s
    }
}

/// A prompt-learning method's config (prefix tuning, prompt tuning, P-tuning): PEFT's `is_prompt_learning`, the
/// shared sizes (`PromptLearningSizes`, read and written with the method's own keys) and PEFT's rule for token types.
public protocol PromptLearningConfig: PeftConfig {
    var sizes: PromptLearningSizes { get set }
}

extension PromptLearningConfig {
    /// Prompt learning: no target or exclude lists; saved modules keyed `base_model.<path>.<name>`.
    public static var isPromptLearning: Bool { true }

    /// The shared sizes' fields followed by the method's own.
    static func withSizes(_ own: [ConfigField<Self>]) -> [ConfigField<Self>] {
        PromptLearningSizes.fields.map { $0.lifted(\Self.sizes) } + own
    }

    public var numVirtualTokens: Int? { get { sizes.numVirtualTokens } set { sizes.numVirtualTokens = newValue } }
    public var tokenDim: Int? { get { sizes.tokenDim } set { sizes.tokenDim = newValue } }
    public var numLayers: Int? { get { sizes.numLayers } set { sizes.numLayers = newValue } }
    public var numAttentionHeads: Int? { get { sizes.numAttentionHeads } set { sizes.numAttentionHeads = newValue } }
    public var numTransformerSubmodules: Int? {
        get { sizes.numTransformerSubmodules } set { sizes.numTransformerSubmodules = newValue }
    }

    /// Whether the model keeps its token types while the method runs: PEFT's task wrappers keep them (extended with
    /// zeros where tokens are prepended) for SEQ_CLS, TOKEN_CLS and QUESTION_ANS and drop them otherwise.
    var keepsTokenTypes: Bool { taskType.map { ["SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS"].contains($0) } ?? false }
}
