/// PEFT's `PolyConfig`, field for field, with PEFT's defaults and JSON names:
///
/// ```
/// r 8, target_modules null, exclude_modules null, modules_to_save null, init_weights true, poly_type "poly",
/// n_tasks 1, n_skills 4, n_splits 1, task_type null, peft_type "POLY", base_model_name_or_path null,
/// revision null, inference_mode false, auto_mapping null, peft_version null
/// ```
/// Extension (PolyPEFT only, written only when not the default so plain configs stay PEFT's):
/// `polypeft_mixing` = `"parameters"` (PEFT) or `"outputs"`; `polypeft_routing` = an object of non-default
/// `RoutingOptions`. Unknown keys are kept in `unknownKeys`, written back,
/// and reported by `warnings`; they are not fatal.
public struct PolyConfig: Equatable, Sendable, Codable {
    public var r = 8
    public var targetModules: TargetModules?
    public var excludeModules: TargetModules?
    public var modulesToSave: [String]?
    public var initWeights = true
    public var polyType = "poly"
    public var nTasks = 1
    public var nSkills = 4
    public var nSplits = 1
    public var taskType: String?
    public var peftType = "POLY"
    public var baseModelNameOrPath: String?
    public var revision: String?
    public var inferenceMode = false
    public var autoMapping: JSONValue?
    public var peftVersion: String?
    /// How skills are combined (extension key `polypeft_mixing`).
    public var mixing: MixingMode = .parameters
    /// Routing variants (extension key `polypeft_routing`, written only when not the default).
    public var routing = RoutingOptions()
    /// Keys this version does not know, kept verbatim.
    public var unknownKeys: [String: JSONValue] = [:]

    /// The JSON names, one to one with the fields.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case r
        case targetModules = "target_modules"
        case excludeModules = "exclude_modules"
        case modulesToSave = "modules_to_save"
        case initWeights = "init_weights"
        case polyType = "poly_type"
        case nTasks = "n_tasks"
        case nSkills = "n_skills"
        case nSplits = "n_splits"
        case taskType = "task_type"
        case peftType = "peft_type"
        case baseModelNameOrPath = "base_model_name_or_path"
        case revision
        case inferenceMode = "inference_mode"
        case autoMapping = "auto_mapping"
        case peftVersion = "peft_version"
        case mixing = "polypeft_mixing"
        case routing = "polypeft_routing"
    }

    public init(r: Int = 8, targetModules: TargetModules? = nil, nTasks: Int = 1, nSkills: Int = 4, nSplits: Int = 1,
                initWeights: Bool = true, mixing: MixingMode = .parameters) {
        self.r = r
        self.targetModules = targetModules
        self.nTasks = nTasks
        self.nSkills = nSkills
        self.nSplits = nSplits
        self.initWeights = initWeights
        self.mixing = mixing
    }

    /// Reads an `adapter_config.json` object; `context` names the source in errors.
    public init(json: JSONValue, context: String = "adapter_config.json") throws {
        let f = try JSONFields(json, context: context)
        r = try f.int("r", default: 8)
        targetModules = try f.targets("target_modules")
        excludeModules = try f.targets("exclude_modules")
        modulesToSave = try f.strings("modules_to_save")
        initWeights = try f.bool("init_weights", default: true)
        polyType = try f.string("poly_type") ?? "poly"
        nTasks = try f.int("n_tasks", default: 1)
        nSkills = try f.int("n_skills", default: 4)
        nSplits = try f.int("n_splits", default: 1)
        taskType = try f.string("task_type")
        peftType = try f.string("peft_type") ?? "POLY"
        baseModelNameOrPath = try f.string("base_model_name_or_path")
        revision = try f.string("revision")
        inferenceMode = try f.bool("inference_mode", default: false)
        autoMapping = f.present("auto_mapping")
        peftVersion = try f.string("peft_version")
        if let m = try f.string("polypeft_mixing") {
            guard let mode = MixingMode(rawValue: m) else {
                throw ConfigError("\(context): 'polypeft_mixing' must be one of parameters, outputs, got \"\(m)\"")
            }
            mixing = mode
        }
        if let ro = f.present("polypeft_routing") { routing = try RoutingOptions(json: ro, context: "\(context): polypeft_routing") }
        unknownKeys = f.unknown(known: Set(CodingKeys.allCases.map(\.rawValue)))
        try validate(context: context)
    }

    /// Checks values PEFT would reject (and some it accepts but fails on later).
    public func validate(context: String = "PolyConfig") throws {
        guard peftType == "POLY" else { throw ConfigError("\(context): peft_type must be \"POLY\", got \"\(peftType)\"") }
        guard r > 0 else { throw ConfigError("\(context): r must be a positive integer, got \(r)") }
        guard polyType == "poly" else {
            throw ConfigError("\(context): poly_type must be \"poly\" (the only type PEFT supports), got \"\(polyType)\"")
        }
        try routing.validate(context: "\(context): polypeft_routing")
        for (name, v) in [("n_tasks", nTasks), ("n_skills", nSkills), ("n_splits", nSplits)] where v < 1 {
            throw ConfigError("\(context): \(name) must be at least 1, got \(v)")
        }
    }

    /// Human-readable notes about keys that were kept but not understood.
    public var warnings: [String] {
        unknownKeys.keys.sorted().map { "unknown key '\($0)' kept as is (PolyPEFT does not use it)" }
    }

    /// The config as PEFT writes it (`json.pythonStyleString()` gives the file's bytes).
    public var json: JSONValue {
        var o: [String: JSONValue] = unknownKeys
        o["r"] = .int(r)
        o["target_modules"] = targetModules?.json ?? .null
        o["exclude_modules"] = excludeModules?.json ?? .null
        o["modules_to_save"] = modulesToSave.map { .array($0.map { .string($0) }) } ?? .null
        o["init_weights"] = .bool(initWeights)
        o["poly_type"] = .string(polyType)
        o["n_tasks"] = .int(nTasks)
        o["n_skills"] = .int(nSkills)
        o["n_splits"] = .int(nSplits)
        o["task_type"] = taskType.map { .string($0) } ?? .null
        o["peft_type"] = .string(peftType)
        o["base_model_name_or_path"] = baseModelNameOrPath.map { .string($0) } ?? .null
        o["revision"] = revision.map { .string($0) } ?? .null
        o["inference_mode"] = .bool(inferenceMode)
        o["auto_mapping"] = autoMapping ?? .null
        o["peft_version"] = peftVersion.map { .string($0) } ?? .null
        if mixing != .parameters { o["polypeft_mixing"] = .string(mixing.rawValue) }
        if !routing.isDefault { o["polypeft_routing"] = routing.json }
        return .object(o)
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
