/// An adapter configuration of any supported PEFT type, read from or written to `adapter_config.json`.
public enum AdapterConfig: Equatable, Sendable {
    case poly(PolyConfig)
    case lora(LoraConfig)

    /// Dispatches on `peft_type`.
    public init(json: JSONValue, context: String = "adapter_config.json") throws {
        guard let type = json["peft_type"]?.stringValue else {
            throw ConfigError("\(context): missing 'peft_type' (expected \"POLY\" or \"LORA\")")
        }
        switch type {
        case "POLY": self = .poly(try PolyConfig(json: json, context: context))
        case "LORA": self = .lora(try LoraConfig(json: json, context: context))
        default: throw ConfigError("\(context): peft_type \"\(type)\" is not supported (expected \"POLY\" or \"LORA\")")
        }
    }

    public var json: JSONValue {
        switch self {
        case .poly(let c): return c.json
        case .lora(let c): return c.json
        }
    }

    public var targetModules: TargetModules? {
        switch self {
        case .poly(let c): return c.targetModules
        case .lora(let c): return c.targetModules
        }
    }

    public var excludeModules: TargetModules? {
        switch self {
        case .poly(let c): return c.excludeModules
        case .lora(let c): return c.excludeModules
        }
    }

    public var modulesToSave: [String]? {
        switch self {
        case .poly(let c): return c.modulesToSave
        case .lora(let c): return c.modulesToSave
        }
    }

    public var warnings: [String] {
        switch self {
        case .poly(let c): return c.warnings
        case .lora(let c): return c.warnings
        }
    }
}
