import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `BeftConfig` (bias-efficient fine-tuning, `peft_type` `"BEFT"`) with its JSON names and defaults:
///
/// ```
/// init_weights true   (+ the common keys; PEFT's BEFT config has no exclude_modules)
/// ```
/// A learned bias is added to the output of every targeted `Linear` (`BeftLayer`); without targets, PEFT's BEFT
/// defaults for the model type apply (`DefaultTargets.beft`: BERT's `value`, T5's `v`).
public struct BeftConfig: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "BEFT"

    public var common = PeftCommonConfig()
    /// True: the biases start at 0 (the model starts as the base); false: N(0, 1), as PEFT leaves them.
    public var initWeights = true
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<BeftConfig>] { [.bool("init_weights", \.initWeights)] }

    public static var commonKeys: Set<String> { PeftCommonConfig.allKeys.subtracting(["exclude_modules"]) }

    public init() {}

    public init(targetModules: TargetModules? = nil, initWeights: Bool = true) {
        common.targetModules = targetModules
        self.initWeights = initWeights
    }

    public func validate(context: String = "BeftConfig") throws {}

    public static func defaultTargetModules(modelType: String) -> [String]? { DefaultTargets.beft[modelType] }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        guard let f = layer as? any FeatureLayer else {
            throw ConfigError("target module '\(path)' is a \(type(of: layer)); BEFT adapts layers with input and output features (Linear)")
        }
        return BeftLayer(wrapping: f, path: path, initWeights: initWeights, using: &rng)
    }

    public var summary: String { "BEFT  targets=\(targetModules?.summary ?? "(model default)")" }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
