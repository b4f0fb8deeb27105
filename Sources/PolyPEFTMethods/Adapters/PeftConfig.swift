import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The configuration of one PEFT method, as PEFT reads and writes it in `adapter_config.json`.
///
/// A method is one type conforming to this protocol, registered by its `peft_type` in `PeftMethods.registered`.
/// Its JSON keys are listed once, in `fields`; the common keys (`PeftCommonConfig`) and `peft_type` are added by the
/// protocol. Decoding starts from `init()`'s defaults, reads every field, rejects unsupported values of `fixedKeys`,
/// and keeps any other key verbatim in `unknownKeys` (written back, reported by `warnings`). Encoding writes every
/// field and every fixed and inert key (at PEFT's default unless kept), so `json.pythonStyleString(indent: 2,
/// sortKeys: true)` is the file PEFT writes.
///
/// `attach(to:defaultTargets:using:)` builds the method on a model; layer tuners get it from `LayerTunerConfig`.
public protocol PeftConfig: Sendable {
    /// PEFT's `peft_type` string (`"LORA"`).
    static var peftType: String { get }
    /// The method's own keys (not the common ones), in no particular order.
    static var fields: [ConfigField<Self>] { get }
    /// Keys PEFT writes whose values must be among the listed ones here, PEFT's default first (other values would
    /// change the maths in a way PolyPEFT does not implement); kept verbatim like unknown keys but not reported, and
    /// written with the default when absent. Default: none.
    static var fixedKeys: [String: [JSONValue]] { get }
    /// Keys PEFT writes that have no effect unless another key enables them (`qalora_group_size` without
    /// `use_qalora`), with PEFT's default; kept verbatim, not reported, written with the default when absent.
    /// Default: none.
    static var inertKeys: [String: JSONValue] { get }
    /// Which common keys this method's PEFT config has. Default: all of them, without the target fields for prompt
    /// learning.
    static var commonKeys: Set<String> { get }
    /// PEFT's `is_prompt_learning` (prefix tuning): the method feeds the model through its inputs or attention
    /// instead of wrapping layers, its config has no target fields, and PEFT's wrapper holds the model directly, so
    /// saved modules are keyed `base_model.<path>.<name>` instead of `base_model.model.<path>.<name>`. Default: false.
    static var isPromptLearning: Bool { get }

    var common: PeftCommonConfig { get set }
    var unknownKeys: [String: JSONValue] { get set }

    /// The defaults PEFT gives every field.
    init()

    /// A one-line description for people (`LoRA  r=8  lora_alpha=16.00  dropout=0.00`). Default: the `peft_type`.
    var summary: String { get }

    /// Checks values PEFT would reject (and some it accepts but fails on later); `context` starts every message.
    func validate(context: String) throws

    /// The config with the values PEFT fills in from the model set (prompt learning's `token_dim`, `num_layers`, ...):
    /// what `PeftModel` validates, attaches, keeps and saves. Default: the config unchanged.
    func resolved(for model: Module) throws -> Self

    /// Builds the method on `model` (whose base weights are loaded), returning what it attached. `defaultTargets`
    /// stands in when a layer tuner's config names no targets (PEFT's per-model defaults).
    func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment

    /// The config with what attaching decided written in (sparse fine-tuning's entries per layer), so that the saved
    /// config rebuilds the same layout. Default: the config unchanged.
    func recording(_ attachment: PeftAttachment) -> Self
}

extension PeftConfig {
    public static var fixedKeys: [String: [JSONValue]] { [:] }
    public static var inertKeys: [String: JSONValue] { [:] }
    public static var commonKeys: Set<String> {
        isPromptLearning ? PeftCommonConfig.allKeys.subtracting(PeftCommonConfig.targetKeys) : PeftCommonConfig.allKeys
    }
    public static var isPromptLearning: Bool { false }
    public var summary: String { Self.peftType }
    public func resolved(for model: Module) throws -> Self { self }
    public func recording(_ attachment: PeftAttachment) -> Self { self }

    /// Every key this config reads and writes: the common ones it has and its own.
    static var allFields: [ConfigField<Self>] {
        PeftCommonConfig.fields.filter { commonKeys.contains($0.key) }.map { $0.lifted(\Self.common) } + fields
    }

    /// Reads an `adapter_config.json` object; `context` names the source in errors.
    public init(json: JSONValue, context: String = "adapter_config.json") throws {
        self.init()
        let r = try JSONObjectReader(json, context: context)
        if let t = try r.string("peft_type"), t != Self.peftType {
            throw ConfigError("\(context): peft_type must be \"\(Self.peftType)\", got \"\(t)\"")
        }
        let fields = Self.allFields
        for f in fields { try f.read(r, &self) }
        let unknown = r.unknown(known: Set(fields.map(\.key) + ["peft_type"]))
        for (key, allowed) in Self.fixedKeys {
            guard let v = unknown[key] else { continue }
            guard allowed.contains(v) else { throw ConfigError("\(context): \(key) = \(v.compactString()) is not supported by PolyPEFT") }
        }
        unknownKeys = unknown
        try validate(context: context)
    }

    /// The config as PEFT writes it (`json.pythonStyleString(indent: 2, sortKeys: true)` gives the file's bytes).
    public var json: JSONValue {
        var o = unknownKeys
        for (key, allowed) in Self.fixedKeys where o[key] == nil { o[key] = allowed[0] }
        for (key, value) in Self.inertKeys where o[key] == nil { o[key] = value }
        for f in Self.allFields { if let v = f.write(self) { o[f.key] = v } }
        o["peft_type"] = .string(Self.peftType)
        return .object(o)
    }

    /// Notes about keys that were kept but not understood.
    public var warnings: [String] {
        unknownKeys.keys.filter { Self.fixedKeys[$0] == nil && Self.inertKeys[$0] == nil }.sorted()
            .map { "unknown key '\($0)' kept as is (PolyPEFT does not use it)" }
    }

    public var peftType: String { Self.peftType }

    // The common fields, read and written through `common`.
    public var taskType: String? { get { common.taskType } set { common.taskType = newValue } }
    public var targetModules: TargetModules? { get { common.targetModules } set { common.targetModules = newValue } }
    public var excludeModules: TargetModules? { get { common.excludeModules } set { common.excludeModules = newValue } }
    public var modulesToSave: [String]? { get { common.modulesToSave } set { common.modulesToSave = newValue } }
    public var inferenceMode: Bool { get { common.inferenceMode } set { common.inferenceMode = newValue } }
    public var baseModelNameOrPath: String? { get { common.baseModelNameOrPath } set { common.baseModelNameOrPath = newValue } }
    public var revision: String? { get { common.revision } set { common.revision = newValue } }
    public var autoMapping: JSONValue? { get { common.autoMapping } set { common.autoMapping = newValue } }
    public var peftVersion: String? { get { common.peftVersion } set { common.peftVersion = newValue } }
}

/// The methods PolyPEFT knows, by `peft_type`. Adding a method adds one line to `registered`.
public enum PeftMethods {
    /// Every registered method's config type.
    public static let registered: [any PeftConfig.Type] = [
        LoraConfig.self,
        PolyConfig.self,
        IA3Config.self,
        PrefixTuningConfig.self,
        PromptTuningConfig.self,
        PromptEncoderConfig.self,
        BeftConfig.self,
        LNTuningConfig.self,
        BitFitConfig.self,
        BnConfig.self,
        SSFConfig.self,
        SparseConfig.self,
        AdaptersLoRAConfig.self,
        AdaptersPrefixConfig.self,
        ConfigUnion.self,
    ]

    /// The supported `peft_type` strings, sorted.
    public static var supportedTypes: [String] { registered.map { $0.peftType }.sorted() }

    /// The config type registered for `peftType`, or nil.
    public static func configType(for peftType: String) -> (any PeftConfig.Type)? {
        registered.first { $0.peftType == peftType }
    }

    /// Decodes an `adapter_config.json` object by its `peft_type`; an unknown type is an error listing the supported ones.
    public static func config(json: JSONValue, context: String = "adapter_config.json") throws -> any PeftConfig {
        let supported = supportedTypes.map { "\"\($0)\"" }.joined(separator: ", ")
        guard let type = json["peft_type"]?.stringValue else {
            throw ConfigError("\(context): missing 'peft_type' (supported: \(supported))")
        }
        guard let t = configType(for: type) else {
            throw ConfigError("\(context): peft_type \"\(type)\" is not supported (supported: \(supported))")
        }
        return try t.init(json: json, context: context)
    }
}
