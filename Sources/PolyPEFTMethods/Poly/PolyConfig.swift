import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `PolyConfig`, field for field, with PEFT's defaults and JSON names:
///
/// ```
/// r 8, init_weights true, poly_type "poly", n_tasks 1, n_skills 4, n_splits 1, peft_type "POLY"
/// (+ the common keys: target_modules, exclude_modules, modules_to_save, task_type, ... ; `PeftCommonConfig`)
/// ```
/// Extension (PolyPEFT only, written only when not the default so plain configs stay PEFT's):
/// `polypeft_mixing` = `"parameters"` (PEFT) or `"outputs"`; `polypeft_routing` = an object of non-default
/// `RoutingOptions`. Unknown keys are kept in `unknownKeys`, written back, and reported by `warnings`.
public struct PolyConfig: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "POLY"

    public var common = PeftCommonConfig()
    public var r = 8
    public var initWeights = true
    public var polyType = "poly"
    public var nTasks = 1
    public var nSkills = 4
    public var nSplits = 1
    /// How skills are combined (extension key `polypeft_mixing`).
    public var mixing: MixingMode = .parameters
    /// Routing variants (extension key `polypeft_routing`, written only when not the default).
    public var routing = RoutingOptions()
    /// Keys this version does not know, kept verbatim.
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<PolyConfig>] {
        [
            .int("r", \.r),
            .bool("init_weights", \.initWeights),
            .string("poly_type", \.polyType),
            .int("n_tasks", \.nTasks),
            .int("n_skills", \.nSkills),
            .int("n_splits", \.nSplits),
            .choice("polypeft_mixing", \.mixing, omitWhenDefault: .parameters),
            ConfigField("polypeft_routing", read: { r, c in
                if let ro = r.present("polypeft_routing") {
                    c.routing = try RoutingOptions(json: ro, context: "\(r.context): polypeft_routing")
                }
            }, write: { $0.routing.isDefault ? Optional<JSONValue>.none : $0.routing.json }),
        ]
    }

    public init() {}

    public init(r: Int = 8, targetModules: TargetModules? = nil, nTasks: Int = 1, nSkills: Int = 4, nSplits: Int = 1,
                initWeights: Bool = true, mixing: MixingMode = .parameters) {
        self.r = r
        self.nTasks = nTasks
        self.nSkills = nSkills
        self.nSplits = nSplits
        self.initWeights = initWeights
        self.mixing = mixing
        common.targetModules = targetModules
    }

    /// Checks values PEFT would reject (and some it accepts but fails on later).
    public func validate(context: String = "PolyConfig") throws {
        guard r > 0 else { throw ConfigError("\(context): r must be a positive integer, got \(r)") }
        guard polyType == "poly" else {
            throw ConfigError("\(context): poly_type must be \"poly\" (the only type PEFT supports), got \"\(polyType)\"")
        }
        try routing.validate(context: "\(context): polypeft_routing")
        for (name, v) in [("n_tasks", nTasks), ("n_skills", nSkills), ("n_splits", nSplits)] where v < 1 {
            throw ConfigError("\(context): \(name) must be at least 1, got \(v)")
        }
        // Sizes that could only be an accident, refused before anything is allocated from them.
        for (name, v, cap) in [("r", r, 1 << 16), ("n_tasks", nTasks, 1 << 24), ("n_skills", nSkills, 1 << 16),
                               ("n_splits", nSplits, 1 << 16)] where v > cap {
            throw ConfigError("\(context): \(name) = \(v) exceeds \(cap)")
        }
        guard nTasks * nSplits * nSkills <= 1 << 28 else {
            throw ConfigError("\(context): n_tasks x n_splits x n_skills = \(nTasks) x \(nSplits) x \(nSkills) exceeds \(1 << 28) router logits")
        }
    }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        try PolyLinear(wrapping: try requireLinear(layer, path: path, method: "Poly"), path: path, r: r, nTasks: nTasks,
                       nSkills: nSkills, nSplits: nSplits, initWeights: initWeights, mixing: mixing, using: &rng)
    }

    /// Wraps the targeted layers and shares their routers by `routing.granularity`.
    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let attachment = try attachLayers(to: model, defaultTargets: defaultTargets, using: &rng)
        try PolyLinear.shareRouters(of: attachment.adapters.compactMap { $0.adapter as? PolyLinear }, options: routing)
        return attachment
    }

    public var summary: String {
        "Poly\(nSplits > 1 ? " / MHR" : "")  r=\(r)  tasks=\(nTasks)  skills=\(nSkills)  splits=\(nSplits)  mixing=\(mixing.rawValue)"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
