import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `PromptTuningConfig` with its JSON names and defaults:
///
/// ```
/// prompt_tuning_init "RANDOM" | "TEXT" | "SAMPLE_VOCAB", prompt_tuning_init_text null, tokenizer_name_or_path null,
/// tokenizer_kwargs null   (+ the prompt-learning sizes, `PromptLearningSizes`, and the common keys without targets)
/// ```
/// The method (`PromptEmbedding`) learns `num_virtual_tokens x num_transformer_submodules` embeddings of the model's
/// width and prepends the first `num_virtual_tokens` of them to the (encoder) input through the model's virtual-token
/// slot (`VirtualTokenHost`), as PEFT feeds `inputs_embeds`; a seq2seq model's second half is saved but unused, as in
/// PEFT. The table starts as N(0, 1) (`RANDOM`), as the input embeddings of `prompt_tuning_init_text` tokenized by the
/// `tokenizer.json` at `tokenizer_name_or_path` (a local folder or file), repeated or cut to length (`TEXT`), or as
/// the embeddings of tokens drawn uniformly from the vocabulary (`SAMPLE_VOCAB`; PEFT's draw comes from torch, ours
/// from the seeded generator). `tokenizer_kwargs` other than null is not supported.
public struct PromptTuningConfig: PromptLearningConfig, Equatable, Codable {
    public static let peftType = "PROMPT_TUNING"

    /// How the virtual token embeddings start.
    public enum Initialization: String, CaseIterable, Sendable {
        case random = "RANDOM", text = "TEXT", sampleVocab = "SAMPLE_VOCAB"
    }

    public var common = PeftCommonConfig()
    public var sizes = PromptLearningSizes()
    public var promptTuningInit = Initialization.random
    public var promptTuningInitText: String?
    public var tokenizerNameOrPath: String?
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<PromptTuningConfig>] {
        withSizes([.choice("prompt_tuning_init", \.promptTuningInit),
                   .optionalString("prompt_tuning_init_text", \.promptTuningInitText),
                   .optionalString("tokenizer_name_or_path", \.tokenizerNameOrPath)])
    }

    public static var fixedKeys: [String: [JSONValue]] { ["tokenizer_kwargs": [.null]] }

    public init() {}

    public init(numVirtualTokens: Int, taskType: String? = nil, initialization: Initialization = .random,
                text: String? = nil, tokenizer: String? = nil) {
        sizes.numVirtualTokens = numVirtualTokens
        common.taskType = taskType
        promptTuningInit = initialization
        promptTuningInitText = text
        tokenizerNameOrPath = tokenizer
    }

    /// PEFT's checks: `TEXT` needs the text and a tokenizer.
    public func validate(context: String = "PromptTuningConfig") throws {
        try sizes.validate(context: context)
        if promptTuningInit == .text {
            guard tokenizerNameOrPath != nil else {
                throw ConfigError("\(context): prompt_tuning_init TEXT needs tokenizer_name_or_path (a folder holding tokenizer.json)")
            }
            guard promptTuningInitText != nil else { throw ConfigError("\(context): prompt_tuning_init TEXT needs prompt_tuning_init_text") }
        }
        try PromptLearningSizes.checkSize("num_virtual_tokens x num_transformer_submodules x token_dim",
                                          [numVirtualTokens, numTransformerSubmodules ?? 1, tokenDim], context: context)
    }

    public func resolved(for model: Module) throws -> PromptTuningConfig {
        var c = self
        c.sizes = try PromptEmbedding.resolvedSizes(sizes, for: model, taskType: taskType)
        return c
    }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let c = try resolved(for: model)
        let host = try PromptEmbedding.host(of: model)
        let (p, total, dim) = try PromptEmbedding.checkedSizes(c.sizes, host: host, model: model)
        let table: Tensor
        switch c.inferenceMode ? .random : promptTuningInit {
        case .random:
            table = Tensor.normal([total, dim], using: &rng)
        case .text:
            table = try PromptEmbedding.embeddings(of: try textTokenIDs(), count: total, host: host)
        case .sampleVocab:
            let vocab = try host.inputEmbeddingTable.shape[0]
            table = try PromptEmbedding.embeddings(of: (0..<total).map { _ in Int.random(in: 0..<vocab, using: &rng) },
                                                    count: total, host: host)
        }
        let source = try PromptEmbedding(virtualTokens: p, table: PromptTable(form: .direct(table: Parameter(table)), method: "prompt tuning"),
                                         keepsTokenTypes: c.keepsTokenTypes, host: host)
        return PeftAttachment(adapters: [("", source)])
    }

    /// The ids of `prompt_tuning_init_text` as `tokenizer_name_or_path`'s `tokenizer.json` encodes it, special tokens
    /// included (as PEFT calls the tokenizer).
    func textTokenIDs() throws -> [Int] {
        guard let path = tokenizerNameOrPath, let text = promptTuningInitText else { return [] }
        var url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            url = url.appendingPathComponent("tokenizer.json")
        }
        let ids = try Tokenizer(contentsOf: url).encode(text).ids
        guard !ids.isEmpty else { throw ConfigError("prompt tuning: prompt_tuning_init_text encodes to no tokens") }
        return ids
    }

    public var summary: String {
        "PromptTuning  virtual_tokens=\(numVirtualTokens ?? 0)  init=\(promptTuningInit.rawValue)"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
