import PolyPEFTCore
import PolyPEFTIO

/// The adapters library's LoRA and (IA)^3 in its own format: `{"architecture": "lora", ...}` (our config without
/// `peft_type` and the PEFT common keys), weights keyed `<module>.loras.<name>.<tensor>`.
extension AdaptersLoRAConfig: AdapterHubMethod {
    public static var adapterHubArchitectures: [String?] { ["lora"] }

    public init(adapterHubConfig json: JSONValue, context: String) throws {
        var o = json.objectValue ?? [:]
        o["architecture"] = nil
        for key in ["peft_type"] + PeftCommonConfig.allKeys.sorted() where o[key] != nil {
            throw ConfigError("\(context): '\(key)' is a PEFT key, not one of the adapters library's LoRA config")
        }
        try self.init(json: .object(o), context: context)
    }

    public var adapterHubConfig: JSONValue {
        var o = peftJSONWithoutCommonKeys.objectValue ?? [:]
        o["architecture"] = "lora"
        return .object(o)
    }
}

extension AdaptersLoRALinear: AdapterHubAdapter {
    /// `<path>.loras.<name>.<tensor>` (`lora_A`, `lora_B`, `gate.weight`, `gate.bias`).
    public func adapterHubKeys(tensor: String, name: String) -> [String] { ["\(path).loras.\(name).\(tensor)"] }
}
