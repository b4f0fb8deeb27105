import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `IA3Config` with its JSON names and defaults:
///
/// ```
/// feedforward_modules null, init_ia3_weights true, fan_in_fan_out false, peft_type "IA3"
/// (+ the common keys: target_modules, exclude_modules, modules_to_save, ... ; `PeftCommonConfig`)
/// ```
/// A targeted layer is a feed-forward module (its input is scaled) when `feedforward_modules` matches it: a regex
/// string must match the whole path; a list entry matches a path that *ends with* it (PEFT's `str.endswith`, with no
/// dot boundary, unlike `target_modules`). Without targets, PEFT's IA3 defaults for the model type apply
/// (`DefaultTargets.ia3`, `DefaultTargets.ia3Feedforward`).
public struct IA3Config: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "IA3"

    public var common = PeftCommonConfig()
    public var feedforwardModules: TargetModules?
    /// True: the scaling vectors start at 1 (the model starts as the base); false: N(0, 1), as PEFT leaves them.
    public var initIA3Weights = true
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<IA3Config>] {
        [.targets("feedforward_modules", \.feedforwardModules), .bool("init_ia3_weights", \.initIA3Weights)]
    }

    public static var fixedKeys: [String: [JSONValue]] { ["fan_in_fan_out": [false]] }

    public init() {}

    public init(targetModules: TargetModules? = nil, feedforwardModules: TargetModules? = nil) {
        common.targetModules = targetModules
        self.feedforwardModules = feedforwardModules
    }

    /// PEFT's check: listed feed-forward modules must be listed targets too.
    public func validate(context: String = "IA3Config") throws {
        if case .names(let ff)? = feedforwardModules, case .names(let t)? = targetModules,
           let stray = ff.sorted().first(where: { !t.contains($0) }) {
            throw ConfigError("\(context): feedforward_modules entry '\(stray)' is not in target_modules (it must be a subset)")
        }
    }

    public static func defaultTargetModules(modelType: String) -> [String]? { DefaultTargets.ia3[modelType] }

    /// Whether the layer at `path` scales its input (feed-forward) rather than its output.
    public func isFeedforward(_ path: String, model: Module?) throws -> Bool {
        let ff = feedforwardModules
            ?? model.flatMap(DefaultTargets.modelType(of:)).flatMap { DefaultTargets.ia3Feedforward[$0] }.map { .names($0) }
        switch ff {
        case nil: return false
        case .regex?: return try ff!.matches(path)
        case .names(let list)?: return list.contains { path.hasSuffix($0) }
        }
    }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        try IA3Layer(wrapping: layer, path: path, feedforward: try isFeedforward(path, model: model), initWeights: initIA3Weights,
                     using: &rng)
    }

    public var summary: String { "IA3  feedforward=\(feedforwardModules?.summary ?? "(model default)")" }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
