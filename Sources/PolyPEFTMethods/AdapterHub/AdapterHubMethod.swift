import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A method that the `adapters` library (AdapterHub) also defines, exchanged in that library's folder format
/// (`AdapterHubFolder`; `PeftModel.saveAdapterHub` and `PeftModel.loadAdapterHub`).
///
/// The library's `adapter_config.json` holds the method's config under `config`, told apart by its `architecture`
/// key (absent for bottleneck adapters), and its weight keys are the model's module paths with the adapter's name as
/// one level: `encoder.layer.0.output.adapters.<name>.adapter_down.0.weight`; each adapter the method attaches says
/// its own keys (`AdapterHubAdapter`).
public protocol AdapterHubMethod: PeftConfig {
    /// The library's `architecture` values this config reads (`nil` stands for an absent or null key).
    static var adapterHubArchitectures: [String?] { get }
    /// Reads the library's method config (the `config` object); `context` names the source in errors.
    init(adapterHubConfig: JSONValue, context: String) throws
    /// The method's config as the library's `AdapterConfig.to_dict()` writes it.
    var adapterHubConfig: JSONValue { get }
}

/// An adapter whose tensors the adapters library also holds, under its own keys.
public protocol AdapterHubAdapter: Adapter {
    /// The library's keys for this adapter's saved tensor `tensor`, for an adapter called `name`: the key
    /// `named_parameters()` gives first, then any alias the library's `state_dict()` also lists for the same tensor
    /// (which a folder may hold as a copy).
    func adapterHubKeys(tensor: String, name: String) -> [String]
    /// Further names of the same tensor that a folder may hold (as copies) and that are read but not written.
    /// Default: none.
    func adapterHubAliases(tensor: String, name: String) -> [String]
}

extension AdapterHubAdapter {
    public func adapterHubAliases(tensor: String, name: String) -> [String] { [] }
}

extension AdapterHubMethod {
    /// `init(adapterHubConfig:context:)` as an existential (called on `any AdapterHubMethod.Type`).
    static func decode(adapterHubConfig json: JSONValue, context: String) throws -> any AdapterHubMethod {
        try Self(adapterHubConfig: json, context: context)
    }

    /// `init(json:context:)` of the library's method config `json`: its `architecture` dropped, and a PEFT key
    /// (`peft_type`, a common key) an error, as the library's config has none.
    init(adapterHubKeys json: JSONValue, context: String) throws {
        var o = json.objectValue ?? [:]
        o["architecture"] = nil
        for key in ["peft_type"] + PeftCommonConfig.allKeys.sorted() where o[key] != nil {
            throw ConfigError("\(context): '\(key)' is a PEFT key, not one of the adapters library's config")
        }
        if let key = o.keys.sorted().first(where: { $0.hasPrefix("polypeft_") }) {
            throw ConfigError("\(context): '\(key)' is PolyPEFT's key, not one of the adapters library's config")
        }
        try self.init(json: .object(o), context: context)
    }

    /// The PEFT-format JSON without what only PEFT's files have (`peft_type` and the common keys).
    var peftJSONWithoutCommonKeys: JSONValue {
        var o = json.objectValue ?? [:]
        o["peft_type"] = nil
        for key in PeftCommonConfig.allKeys { o[key] = nil }
        return .object(o)
    }
}

/// The methods PolyPEFT exchanges in the adapters library's format, by `architecture`.
public enum AdapterHubMethods {
    /// Every method with an adapters-library format.
    public static let registered: [any AdapterHubMethod.Type] = [BnConfig.self, AdaptersLoRAConfig.self, AdaptersPrefixConfig.self, ConfigUnion.self]

    /// True when the library's `key` in `tensors` (of an adapter called `name`) is a second name of a tensor stored
    /// under another key too, so that a count of parameters skips it: with `ln_before` a bottleneck adapter's first
    /// LayerNorm is `adapter_norm_before` and `adapter_down.0`; the adapters library's prefix-tuning pool is held under every attention layer's `prefix_tuning.pool` too.
    public static func isAlias(_ key: String, name: String, in tensors: [String: Tensor]) -> Bool {
        if key.contains(".prefix_tuning.pool.prefix_tunings.\(name).") { return true }
        let alias = ".\(name).adapter_down.0."
        guard let r = key.range(of: alias) else { return false }
        let twin = key.replacingCharacters(in: r, with: ".\(name).adapter_norm_before.")
        return tensors[twin] != nil && tensors[twin] == tensors[key]
    }

    /// Decodes the library's method config by its `architecture`; an unsupported one is an error naming it.
    public static func config(adapterHubConfig json: JSONValue, context: String) throws -> any AdapterHubMethod {
        guard case .object(let o) = json else {
            throw ConfigError("\(context): config must be an object, found \(json.kindName)")
        }
        var architecture: String?
        if let a = o["architecture"], a != .null {
            guard let s = a.stringValue else { throw ConfigError("\(context): architecture must be a string, found \(a.kindName)") }
            architecture = s
        }
        guard let type = registered.first(where: { $0.adapterHubArchitectures.contains(architecture) }) else {
            let supported = registered.flatMap { $0.adapterHubArchitectures }.map { $0.map { "\"\($0)\"" } ?? "none (bottleneck)" }
            throw ConfigError("\(context): architecture \"\(architecture ?? "")\" is not read in the adapters library's format "
                + "(supported: \(supported.joined(separator: ", ")))")
        }
        return try type.decode(adapterHubConfig: json, context: context)
    }
}

extension JSONValue {
    /// The first PolyPEFT extension key (`polypeft_...`) in this config or its parts, or nil.
    var polyPEFTKey: String? {
        switch self {
        case .object(let o):
            if let k = o.keys.sorted().first(where: { $0.hasPrefix("polypeft_") }) { return k }
            return o.keys.sorted().lazy.compactMap { o[$0]!.polyPEFTKey }.first
        case .array(let a): return a.lazy.compactMap(\.polyPEFTKey).first
        default: return nil
        }
    }
}
