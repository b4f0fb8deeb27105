import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// LoRA and (IA)^3 as the adapters library defines them (its `LoRAConfig` and `IA3Config`, `architecture` `"lora"`),
/// in PolyPEFT's namespace (`peft_type` `"POLYPEFT_ADAPTERS_LORA"`): the library places them by location instead of
/// module names, and it can gate them (UniPELT), which PEFT's LoRA and IA3 cannot. Every key has the library's name
/// and default:
///
/// ```
/// selfattn_lora true, intermediate_lora false, output_lora false   where: attention's q/k/v (T5: self- and
///                                                                  cross-attention), the FFN's first and last linear
/// attn_matrices ["q", "v"]        which of the attention projections
/// leave_out []                    layer indices left out (an encoder-decoder's decoder layers follow its encoder's)
/// r 8, alpha 8, dropout 0.0       rank, scaling alpha / r, dropout on the LoRA input
/// composition_mode "add" | "scale"   add x A^T B^T (LoRA), or scale the output by lora_B ((IA)^3; r must be 1)
/// init_weights "lora" | "bert" | "ia3", init_weights_seed null
/// use_gating false                a learned gate mean_t sigmoid(gate(x)) replaces the scaling (per sample)
/// use_dora false, vera_d null, vera_b null, dtype null   (other values are not supported)
/// ```
/// `AdaptersLoRALinear` has the maths. The presets are `lora()` and `ia3()` (the library's `IA3Config`: `k`, `v` and
/// the intermediate layer, scale, `r` 1, init "ia3").
public struct AdaptersLoRAConfig: GateableConfig, Equatable, Codable {
    public static let peftType = "POLYPEFT_ADAPTERS_LORA"

    /// `composition_mode`.
    public enum Composition: String, CaseIterable, Sendable { case add, scale }

    /// `init_weights`.
    public enum Initialization: String, CaseIterable, Sendable { case lora, bert, ia3 }

    /// Where in a transformer layer a module sits, as the library's LoRA location keys say.
    public enum Location: String, CaseIterable, Sendable {
        case selfAttention = "selfattn", intermediate, output
        /// The key of the gating scores (`selfattn_lora`).
        public var gatingKey: String { rawValue + "_lora" }
    }

    public var common = PeftCommonConfig()
    public var unknownKeys: [String: JSONValue] = [:]
    public var selfattnLora = true
    public var intermediateLora = false
    public var outputLora = false
    public var leaveOut: [Int] = []
    public var r = 8
    public var alpha = 8.0
    public var dropout = 0.0
    public var attnMatrices = ["q", "v"]
    public var compositionMode = Composition.add
    public var initWeights = Initialization.lora
    public var initWeightsSeed: Int?
    public var useGating = false
    /// Tasks of task-routed gates (PolyPEFT's `polypeft_task_gates`, `MethodGate`), nil for the library's input gates.
    public var taskGates: Int?

    /// The library's `LoRAConfig` defaults.
    public init() {}

    /// `LoRAConfig(r:alpha:)`.
    public static func lora(r: Int = 8, alpha: Double = 8) -> AdaptersLoRAConfig {
        var c = AdaptersLoRAConfig()
        c.r = r
        c.alpha = alpha
        return c
    }

    /// `IA3Config()`: scale the outputs of attention's `k`, `v` and the intermediate layer by a learned vector.
    public static func ia3() -> AdaptersLoRAConfig {
        var c = AdaptersLoRAConfig()
        c.intermediateLora = true
        c.r = 1
        c.alpha = 1
        c.attnMatrices = ["k", "v"]
        c.compositionMode = .scale
        c.initWeights = .ia3
        return c
    }

    public static var fields: [ConfigField<AdaptersLoRAConfig>] {
        [
            .bool("selfattn_lora", \.selfattnLora),
            .bool("intermediate_lora", \.intermediateLora),
            .bool("output_lora", \.outputLora),
            .layerIndices("leave_out", \.leaveOut),
            .int("r", \.r),
            ConfigField("alpha", read: { r, c in
                guard let v = r.present("alpha"), v != .null else { return }
                guard let x = v.doubleValue else { throw r.fail("alpha", "a number", v) }
                c.alpha = x
            }, write: { c in c.alpha == c.alpha.rounded() && Swift.abs(c.alpha) < 1e15 ? .int(Int(c.alpha)) : .double(c.alpha) }),
            .double("dropout", \.dropout),
            ConfigField("attn_matrices", read: { r, c in
                guard let v = r.present("attn_matrices"), v != .null else { return }
                let names = v.arrayValue?.compactMap(\.stringValue)
                guard let names, names.count == v.arrayValue?.count else {
                    throw r.fail("attn_matrices", "a list of \"q\", \"k\", \"v\"", v)
                }
                c.attnMatrices = names
            }, write: { c in .array(c.attnMatrices.map { .string($0) }) }),
            .choice("composition_mode", \.compositionMode),
            .choice("init_weights", \.initWeights),
            .optionalInt("init_weights_seed", \.initWeightsSeed),
            .bool("use_gating", \.useGating),
            .taskGates,
        ]
    }

    /// Keys of the library's config that select what PolyPEFT does not implement.
    public static var fixedKeys: [String: [JSONValue]] {
        ["use_dora": [.bool(false)], "vera_d": [.null], "vera_b": [.null], "dtype": [.null]]
    }

    /// Placed by location, not by module names: no target fields.
    public static var commonKeys: Set<String> { PeftCommonConfig.allKeys.subtracting(PeftCommonConfig.targetKeys) }

    /// The locations this config fills.
    public var locations: [Location] {
        [(selfattnLora, Location.selfAttention), (intermediateLora, .intermediate), (outputLora, .output)].filter(\.0).map(\.1)
    }

    /// `alpha / r` (add) or `alpha` (scale): the factor the update gets without a gate.
    public var scaling: Double { compositionMode == .add ? alpha / Double(r) : alpha }

    public var summary: String {
        let what = compositionMode == .add ? "LoRA  r=\(r)  alpha=\(formatFixed(alpha, digits: alpha == alpha.rounded() ? 0 : 2))" : "(IA)^3"
        return "\(what)  (adapters library)  " + locations.map(\.gatingKey).joined(separator: "+")
            + (locations.contains(.selfAttention) ? "  attn_matrices=\(attnMatrices.joined(separator: ","))" : "")
            + (useGating ? "  gated" : "")
    }

    public func validate(context: String = "AdaptersLoRAConfig") throws {
        try validateTaskGates(context: context)
        guard (1...4096).contains(r) else { throw ConfigError("\(context): r must be in 1...4096, got \(r)") }
        guard alpha.isFinite else { throw ConfigError("\(context): alpha must be finite, got \(alpha)") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw ConfigError("\(context): dropout must be in [0, 1), got \(dropout)") }
        if let bad = attnMatrices.first(where: { !["q", "k", "v"].contains($0) }) {
            throw ConfigError("\(context): attn_matrices may hold \"q\", \"k\", \"v\", got \"\(bad)\"")
        }
        guard !locations.isEmpty, !(locations == [.selfAttention] && attnMatrices.isEmpty) else {
            throw ConfigError("\(context): no location enabled (selfattn_lora with attn_matrices, intermediate_lora, output_lora)")
        }
        if compositionMode == .scale {
            guard r == 1 else { throw ConfigError("\(context): composition_mode \"scale\" needs r = 1, got \(r)") }
            guard dropout == 0 else { throw ConfigError("\(context): composition_mode \"scale\" has no dropout (the library refuses it), got \(dropout)") }
        }
    }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let chosen = try AdaptersLoRALinear.targets(of: model, selectedBy: self)
        var built: [(String, AdaptersLoRALinear)] = []
        for t in chosen {
            func make(using g: inout some RandomNumberGenerator) throws -> AdaptersLoRALinear {
                try AdaptersLoRALinear(wrapping: t.layer, path: t.path, config: self, layerIndex: t.index, location: t.location, using: &g)
            }
            // init_weights_seed: every module starts from the same draws, as the library reseeds per module.
            if var seeded = initWeightsSeed.map({ Xoshiro256(seed: UInt64(truncatingIfNeeded: $0)) }) {
                built.append((t.path, try make(using: &seeded)))
            } else {
                built.append((t.path, try make(using: &rng)))
            }
        }
        for (path, adapter) in built { try model.replace(path: path, with: adapter) }
        return PeftAttachment(adapters: built.map { ($0.0, $0.1 as any Adapter) })
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
