import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `LNTuningConfig` (`peft_type` `"LN_TUNING"`): no keys of its own besides the common ones.
///
/// Every targeted norm is replaced by an `LNTuningLayer`, which trains a copy of it. Without targets, PEFT's
/// defaults for the model type apply (`DefaultTargets.lnTuning`: T5's `layer_norm` and `final_layer_norm`); BERT has
/// none in PEFT, so its norms must be named (`target_modules: ["LayerNorm"]`).
public struct LNTuningConfig: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "LN_TUNING"

    public var common = PeftCommonConfig()
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<LNTuningConfig>] { [] }

    public init() {}

    public init(targetModules: TargetModules?) { common.targetModules = targetModules }

    public func validate(context: String = "LNTuningConfig") throws {}

    public static func defaultTargetModules(modelType: String) -> [String]? { DefaultTargets.lnTuning[modelType] }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        guard let copyable = layer as? any CopyableLayer else {
            throw ConfigError("target module '\(path)' is a \(type(of: layer)), which LN tuning cannot copy (it tunes norms: LayerNorm, RMSNorm)")
        }
        return LNTuningLayer(wrapping: copyable, path: path)
    }

    public var summary: String { "LN_TUNING  targets=\(targetModules?.summary ?? "(model default)")" }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
