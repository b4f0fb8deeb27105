import PolyPEFTCore
import PolyPEFTIO

/// Arrow routing over a library of LoRA adapters (Ostapenko et al. 2024, "Towards Modular LLMs by Building and Reusing
/// a Library of LoRAs"), with GenKnowSub (Bhardwaj et al. 2025), as PEFT's `ArrowConfig` defines them:
///
/// ```
/// top_k 3                 experts mixed per token
/// router_temperature 1.0  softmax temperature over the chosen experts' |x . prototype|
/// use_gks false           subtract the mean of the general adapters' A and B from every expert's (GenKnowSub)
/// rng_seed null           the power iteration's start (ours: the start of the iteration that finds each prototype)
/// ```
/// Keys are PEFT's (`LoraConfig.arrow_config`). `ArrowLinear` has the maths.
public struct ArrowConfig: Equatable, Sendable {
    public var topK = 3
    public var routerTemperature = 1.0
    public var useGKS = false
    public var rngSeed: Int?

    public init(topK: Int = 3, routerTemperature: Double = 1.0, useGKS: Bool = false, rngSeed: Int? = nil) {
        self.topK = topK
        self.routerTemperature = routerTemperature
        self.useGKS = useGKS
        self.rngSeed = rngSeed
    }

    /// PEFT's `arrow_config` object.
    public var json: JSONValue {
        ["top_k": .int(topK), "router_temperature": .double(routerTemperature), "use_gks": .bool(useGKS),
         "rng_seed": rngSeed.map { .int($0) } ?? .null]
    }

    /// Reads PEFT's `arrow_config` object (its `task_adapter_names` and `gks_adapter_names` are set by
    /// `create_arrow_model` and ignored here).
    public init(json: JSONValue, context: String) throws {
        let r = try JSONObjectReader(json, context: context)
        topK = try r.int("top_k", default: 3)
        routerTemperature = try r.double("router_temperature", default: 1.0)
        useGKS = try r.bool("use_gks", default: false)
        if let v = r.present("rng_seed"), v != .null {
            guard let n = v.intValue else { throw r.fail("rng_seed", "an integer or null", v) }
            rngSeed = n
        }
        try validate(context: context)
    }

    public func validate(context: String = "ArrowConfig") throws {
        guard topK >= 1 else { throw ConfigError("\(context): top_k must be at least 1, got \(topK)") }
        guard routerTemperature.isFinite, routerTemperature > 0 else {
            throw ConfigError("\(context): router_temperature must be a positive number, got \(routerTemperature)")
        }
    }
}
