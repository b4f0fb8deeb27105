import PolyPEFTCore
import PolyPEFTIO

/// The adapters library's prefix tuning in its own format: `{"architecture": "prefix_tuning", ...}` (our config
/// without `peft_type` and the PEFT common keys). Weights: the pool at
/// `[<base>.]prefix_tuning.prefix_tunings.<name>.<location>_prefix.<tensor>`, the gates at
/// `<attention>.prefix_tuning.prefix_gates.<name>.{weight,bias}`.
extension AdaptersPrefixConfig: AdapterHubMethod {
    public static var adapterHubArchitectures: [String?] { ["prefix_tuning"] }

    public init(adapterHubConfig json: JSONValue, context: String) throws {
        try self.init(adapterHubKeys: json, context: context)
    }

    public var adapterHubConfig: JSONValue {
        var o = peftJSONWithoutCommonKeys.objectValue ?? [:]
        o["architecture"] = "prefix_tuning"
        return .object(o)
    }
}

/// The library's model holds its pool once on the base model and again under every attention layer's
/// `prefix_tuning.pool` (one tensor, many names): its `state_dict()` lists each, so its `save_adapter` cannot write
/// safetensors (they share memory) and a converted torch-format file holds every copy. We write the pool's own key
/// only (the library loads it: the copies are the same tensor) and read any of the copies.
extension AdaptersPrefixPool: AdapterHubAdapter {
    public func adapterHubKeys(tensor: String, name: String) -> [String] {
        let base = path.split(separator: ".").dropLast().joined(separator: ".")
        return [(base.isEmpty ? "" : base + ".") + "prefix_tuning.prefix_tunings.\(name).\(tensor)"]
    }

    public func adapterHubAliases(tensor: String, name: String) -> [String] {
        hostPaths.map { "\($0).prefix_tuning.pool.prefix_tunings.\(name).\(tensor)" }
    }
}

extension AdaptersPrefixSlot: AdapterHubAdapter {
    /// `<attention>.prefix_tuning.prefix_gates.<name>.{weight,bias}`.
    public func adapterHubKeys(tensor: String, name: String) -> [String] {
        ["\(path).prefix_gates.\(name).\(tensor.hasPrefix("gate.") ? String(tensor.dropFirst(5)) : tensor)"]
    }
}
