import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Scaling and shifting of features (SSF; Lian et al. 2022) in PolyPEFT's namespace (`peft_type` `"POLYPEFT_SSF"`:
/// PEFT has no SSF). Keys:
///
/// ```
/// init_std 0.02       scale ~ N(1, init_std^2), shift ~ N(0, init_std^2), as the paper initialises them
///                     (0: scale 1 and shift 0, so training starts exactly at the base)
/// (+ the common keys: target_modules, exclude_modules, modules_to_save, ... ; `PeftCommonConfig`)
/// ```
/// Every targeted layer's output is scaled and shifted per feature (`SSFLayer`); targets are linear layers and norms.
/// Without targets, `DefaultTargets.ssf` applies (every linear layer and norm of BERT's and T5's blocks). Saved as
/// `base_model.model.<path>.ssf_scale` and `.ssf_shift` (each `[out]`), and merged into the layer itself.
public struct SSFConfig: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "POLYPEFT_SSF"

    public var common = PeftCommonConfig()
    public var initStd = 0.02
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<SSFConfig>] { [.double("init_std", \.initStd)] }

    public init() {}

    public init(targetModules: TargetModules? = nil, initStd: Double = 0.02) {
        common.targetModules = targetModules
        self.initStd = initStd
    }

    public func validate(context: String = "SSFConfig") throws {
        guard initStd.isFinite, initStd >= 0, initStd <= 1 else {
            throw ConfigError("\(context): init_std must be in [0, 1], got \(initStd)")
        }
    }

    public static func defaultTargetModules(modelType: String) -> [String]? { DefaultTargets.ssf[modelType] }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        try SSFLayer(wrapping: layer, path: path, initStd: Float(initStd), using: &rng)
    }

    public var summary: String {
        "SSF  targets=\(targetModules?.summary ?? "(model default)")  init_std=\(formatFixed(initStd, digits: 3))"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
