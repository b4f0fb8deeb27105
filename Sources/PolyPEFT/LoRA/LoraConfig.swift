/// The subset of PEFT's `LoraConfig` that PolyPEFT implements, with PEFT's JSON names and defaults:
///
/// ```
/// r 8, lora_alpha 8, lora_dropout 0.0, target_modules null, exclude_modules null, use_rslora false,
/// init_lora_weights true (or false, or "gaussian"), bias "none", modules_to_save null, peft_type "LORA"
/// ```
/// PEFT writes many more keys. Those whose default value changes nothing are accepted; a key that would change the
/// maths with a value PolyPEFT does not implement (`use_dora: true`, `bias: "all"`, a non-empty `rank_pattern`,
/// `fan_in_fan_out: true`, ...) is an error, never silently ignored. Other unknown keys are kept and reported.
public struct LoraConfig: Equatable, Sendable, Codable {
    public var r = 8
    public var loraAlpha: Double = 8
    public var loraDropout: Double = 0
    public var targetModules: TargetModules?
    public var excludeModules: TargetModules?
    public var useRslora = false
    public var initLoraWeights: LoRALinear.Initialization = .kaiming
    public var bias = "none"
    public var modulesToSave: [String]?
    public var taskType: String?
    public var peftType = "LORA"
    public var baseModelNameOrPath: String?
    public var revision: String?
    public var inferenceMode = false
    public var unknownKeys: [String: JSONValue] = [:]

    /// The JSON names of the fields above.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case r
        case loraAlpha = "lora_alpha"
        case loraDropout = "lora_dropout"
        case targetModules = "target_modules"
        case excludeModules = "exclude_modules"
        case useRslora = "use_rslora"
        case initLoraWeights = "init_lora_weights"
        case bias
        case modulesToSave = "modules_to_save"
        case taskType = "task_type"
        case peftType = "peft_type"
        case baseModelNameOrPath = "base_model_name_or_path"
        case revision
        case inferenceMode = "inference_mode"
    }

    /// Keys PEFT writes whose value must be the given default here (anything else is unsupported).
    static let mustBeDefault: [String: [JSONValue]] = [
        "use_dora": [false], "fan_in_fan_out": [false], "lora_bias": [false], "layers_to_transform": [nil],
        "layers_pattern": [nil], "rank_pattern": [nil, [:]], "alpha_pattern": [nil, [:]], "layer_replication": [nil],
        "target_parameters": [nil, []], "trainable_token_indices": [nil], "use_qalora": [false],
    ]

    public init(r: Int = 8, loraAlpha: Double = 8, targetModules: TargetModules? = nil) {
        self.r = r
        self.loraAlpha = loraAlpha
        self.targetModules = targetModules
    }

    public init(json: JSONValue, context: String = "adapter_config.json") throws {
        let f = try JSONObjectReader(json, context: context)
        r = try f.int("r", default: 8)
        loraAlpha = try f.double("lora_alpha", default: 8)
        loraDropout = try f.double("lora_dropout", default: 0)
        targetModules = try f.targets("target_modules")
        excludeModules = try f.targets("exclude_modules")
        useRslora = try f.bool("use_rslora", default: false)
        switch f.present("init_lora_weights") {
        case nil, .bool(true)?: initLoraWeights = .kaiming
        case .bool(false)?: initLoraWeights = .random
        case .string("gaussian")?: initLoraWeights = .gaussian
        case let v?: throw ConfigError("\(context): init_lora_weights \(v.compactString()) is not supported (use true, false or \"gaussian\")")
        }
        bias = try f.string("bias") ?? "none"
        modulesToSave = try f.strings("modules_to_save")
        taskType = try f.string("task_type")
        peftType = try f.string("peft_type") ?? "LORA"
        baseModelNameOrPath = try f.string("base_model_name_or_path")
        revision = try f.string("revision")
        inferenceMode = try f.bool("inference_mode", default: false)
        var unknown = f.unknown(known: Set(CodingKeys.allCases.map(\.rawValue)))
        for (key, allowed) in LoraConfig.mustBeDefault {
            guard let v = unknown.removeValue(forKey: key) else { continue }
            guard allowed.contains(v) else { throw ConfigError("\(context): \(key) = \(v.compactString()) is not supported by PolyPEFT") }
        }
        unknownKeys = unknown
        try validate(context: context)
    }

    public func validate(context: String = "LoraConfig") throws {
        guard peftType == "LORA" else { throw ConfigError("\(context): peft_type must be \"LORA\", got \"\(peftType)\"") }
        guard r > 0 else { throw ConfigError("\(context): r must be a positive integer, got \(r)") }
        guard bias == "none" else { throw ConfigError("\(context): bias \"\(bias)\" is not supported (only \"none\")") }
        guard loraDropout >= 0 && loraDropout < 1 else { throw ConfigError("\(context): lora_dropout must be in [0, 1), got \(loraDropout)") }
    }

    public var warnings: [String] {
        unknownKeys.keys.sorted().map { "unknown key '\($0)' kept as is (PolyPEFT does not use it)" }
    }

    /// The config as PEFT writes it.
    public var json: JSONValue {
        var o: [String: JSONValue] = unknownKeys
        o["r"] = .int(r)
        o["lora_alpha"] = loraAlpha == loraAlpha.rounded() && Swift.abs(loraAlpha) < 1e15 ? .int(Int(loraAlpha)) : .double(loraAlpha)
        o["lora_dropout"] = .double(loraDropout)
        o["target_modules"] = targetModules?.json ?? .null
        o["exclude_modules"] = excludeModules?.json ?? .null
        o["use_rslora"] = .bool(useRslora)
        switch initLoraWeights {
        case .kaiming: o["init_lora_weights"] = true
        case .random: o["init_lora_weights"] = false
        case .gaussian: o["init_lora_weights"] = "gaussian"
        }
        o["bias"] = .string(bias)
        o["modules_to_save"] = modulesToSave.map { .array($0.map { .string($0) }) } ?? .null
        o["task_type"] = taskType.map { .string($0) } ?? .null
        o["peft_type"] = .string(peftType)
        o["base_model_name_or_path"] = baseModelNameOrPath.map { .string($0) } ?? .null
        o["revision"] = revision.map { .string($0) } ?? .null
        o["inference_mode"] = .bool(inferenceMode)
        o["use_dora"] = false
        o["fan_in_fan_out"] = false
        return .object(o)
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
