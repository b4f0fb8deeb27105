import PolyPEFTCore
import PolyPEFTIO

/// The adapters library's LoRA and (IA)^3 in its own format: `{"architecture": "lora", ...}` (our config without
/// `peft_type` and the PEFT common keys), weights keyed `<module>.loras.<name>.<tensor>`.
extension AdaptersLoRAConfig: AdapterHubMethod {
    public static var adapterHubArchitectures: [String?] { ["lora"] }

    public init(adapterHubConfig json: JSONValue, context: String) throws {
        try self.init(adapterHubKeys: json, context: context)
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
