import PolyPEFTCore
import PolyPEFTIO

/// Bottleneck adapters in the adapters library's own format: its `config` is our config without `peft_type` and
/// the PEFT common keys (the key names are the library's already), and its weights are keyed
/// `<slot host>.adapters.<name>.<tensor>` and `shared_parameters.<name>.<tensor>` (Compacter's shared rule).
extension BnConfig: AdapterHubMethod {
    /// The library writes bottleneck configs without `architecture`; `"bottleneck"` is accepted too.
    public static var adapterHubArchitectures: [String?] { [nil, "bottleneck"] }

    public init(adapterHubConfig json: JSONValue, context: String) throws {
        try self.init(adapterHubKeys: json, context: context)
    }

    public var adapterHubConfig: JSONValue { peftJSONWithoutCommonKeys }

}

extension BottleneckAdapter: AdapterHubAdapter {
    /// `<path>.<name>.<tensor>` (the path ends in `.adapters`). With `ln_before` the library's state dict lists the
    /// adapter's first LayerNorm twice: as `adapter_norm_before` and as the first element of `adapter_down`
    /// (`adapter_down.0`).
    public func adapterHubKeys(tensor: String, name: String) -> [String] {
        let key = "\(path).\(name).\(tensor)"
        let norm = "adapter_norm_before."
        guard config.lnBefore, tensor.hasPrefix(norm) else { return [key] }
        return [key, "\(path).\(name).adapter_down.0.\(tensor.dropFirst(norm.count))"]
    }
}

extension PHMSharedRule: AdapterHubAdapter {
    /// `shared_parameters.<name>.<tensor>`.
    public func adapterHubKeys(tensor: String, name: String) -> [String] { ["\(path).\(name).\(tensor)"] }
}
