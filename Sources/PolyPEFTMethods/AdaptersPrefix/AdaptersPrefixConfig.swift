import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Prefix tuning as the adapters library defines it (its `PrefixTuningConfig`, `architecture` `"prefix_tuning"`), in
/// PolyPEFT's namespace (`peft_type` `"POLYPEFT_ADAPTERS_PREFIX"`). It differs from PEFT's prefix tuning: every
/// attention location takes a prefix (BERT's self-attention; T5's encoder self-attention, decoder self-attention and
/// cross-attention), the sequence keeps its positions, and each layer's prefix can be gated by its input (UniPELT).
/// Every key has the library's name and default:
///
/// ```
/// encoder_prefix true, cross_prefix true   T5's encoder self-attention and cross-attention take prefixes
///                                          (decoder self-attention and BERT's self-attention always do)
/// leave_out []                    layer indices left out (an encoder-decoder's decoder layers follow its encoder's)
/// flat false                      train the prefix directly instead of through the bottleneck MLP
/// prefix_length 30, bottleneck_size 512, non_linearity "tanh", dropout 0.0
/// use_gating false, shared_gating true     gate the prefix by mean_t sigmoid(gate(x)): one gate for keys and
///                                          values, or one each
/// init_weights_seed null          every location's generator starts from this seed
/// ```
/// `AdaptersPrefixPool` has the maths of the generator, `AdaptersPrefixSlot` the gate.
public struct AdaptersPrefixConfig: GateableConfig, Equatable, Codable {
    public static let peftType = "POLYPEFT_ADAPTERS_PREFIX"

    /// Which attentions take a prefix, as the library's location keys name them (`self_prefix`, ...).
    public enum Location: String, CaseIterable, Sendable {
        case selfAttention = "self", encoder, cross
        /// The location key of the library's pool and gating scores (`self_prefix`).
        public var key: String { rawValue + "_prefix" }
    }

    public var common = PeftCommonConfig()
    public var unknownKeys: [String: JSONValue] = [:]
    public var encoderPrefix = true
    public var crossPrefix = true
    public var leaveOut: [Int] = []
    public var flat = false
    public var prefixLength = 30
    public var bottleneckSize = 512
    public var nonLinearity = "tanh"
    public var dropout = 0.0
    public var useGating = false
    /// Tasks of task-routed gates (PolyPEFT's `polypeft_task_gates`, `MethodGate`), nil for the library's input gates.
    public var taskGates: Int?
    public var sharedGating = true
    public var initWeightsSeed: Int?

    /// The library's `PrefixTuningConfig` defaults.
    public init() {}

    /// `PrefixTuningConfig(prefix_length:bottleneck_size:)`.
    public init(prefixLength: Int, bottleneckSize: Int = 512) {
        self.prefixLength = prefixLength
        self.bottleneckSize = bottleneckSize
    }

    public static var fields: [ConfigField<AdaptersPrefixConfig>] {
        [
            .bool("encoder_prefix", \.encoderPrefix),
            .bool("cross_prefix", \.crossPrefix),
            .layerIndices("leave_out", \.leaveOut),
            .bool("flat", \.flat),
            .int("prefix_length", \.prefixLength),
            .int("bottleneck_size", \.bottleneckSize),
            .string("non_linearity", \.nonLinearity),
            .double("dropout", \.dropout),
            .bool("use_gating", \.useGating),
            .taskGates,
            .bool("shared_gating", \.sharedGating),
            .optionalInt("init_weights_seed", \.initWeightsSeed),
        ]
    }

    /// Placed by location, not by module names: no target fields.
    public static var commonKeys: Set<String> { PeftCommonConfig.allKeys.subtracting(PeftCommonConfig.targetKeys) }

    /// The generator's activation.
    public var activation: Activation.Kind? { Activation.kind(huggingFaceName: nonLinearity) }

    /// Outputs of each gate: 1 (shared by keys and values) or 2.
    public var gateOutputs: Int { sharedGating ? 1 : 2 }

    public var summary: String {
        "Prefix tuning (adapters library)  length=\(prefixLength)  "
            + (flat ? "flat" : "bottleneck=\(bottleneckSize)  non_linearity=\(nonLinearity)")
            + (useGating ? "  gated\(sharedGating ? "" : " (keys and values apart)")" : "")
    }

    public func validate(context: String = "AdaptersPrefixConfig") throws {
        try validateTaskGates(context: context)
        guard (1...4096).contains(prefixLength) else {
            throw ConfigError("\(context): prefix_length must be in 1...4096, got \(prefixLength)")
        }
        if !flat {
            guard (1...65536).contains(bottleneckSize) else {
                throw ConfigError("\(context): bottleneck_size must be in 1...65536, got \(bottleneckSize)")
            }
            guard activation != nil else {
                let known = Activation.huggingFaceNames.map(\.name).joined(separator: ", ")
                throw ConfigError("\(context): non_linearity '\(nonLinearity)' is not supported (\(known))")
            }
        }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw ConfigError("\(context): dropout must be in [0, 1), got \(dropout)") }
    }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let (all, chosen) = try AdaptersPrefixSlot.places(in: model, selectedBy: self)
        // The library makes the gates as it visits the layers, then one generator per location.
        var slots: [AdaptersPrefixSlot] = []
        for place in chosen {
            slots.append(try AdaptersPrefixSlot(host: place.host, hostPath: place.path, layerIndex: place.index,
                                                location: place.location, config: self, using: &rng))
        }
        var generators: [AdaptersPrefixGenerator] = []
        var locations: [Location] = []
        for place in chosen where !locations.contains(place.location) { locations.append(place.location) }
        for location in locations {
            let at = chosen.filter { $0.location == location }
            func make(using g: inout some RandomNumberGenerator) -> AdaptersPrefixGenerator {
                AdaptersPrefixGenerator(location: location, layers: at.count, inputSize: at[0].host.inputSize,
                                        heads: at[0].host.keyValueHeads, headDim: at[0].host.keyValueHeadDim, config: self, using: &g)
            }
            if var seeded = initWeightsSeed.map({ Xoshiro256(seed: UInt64(truncatingIfNeeded: $0)) }) {
                generators.append(make(using: &seeded))
            } else {
                generators.append(make(using: &rng))
            }
        }
        let pool = AdaptersPrefixPool(path: AdaptersPrefixSlot.poolPath(forHosts: all.map(\.path)), generators: generators,
                                      hostPaths: all.map(\.path))
        for (slot, place) in zip(slots, chosen) {
            try slot.connect(to: pool, position: chosen.prefix { $0.path != place.path }.filter { $0.location == place.location }.count)
            try place.host.installPrefix(slot)
        }
        return PeftAttachment(adapters: [(pool.path, pool as any Adapter)] + slots.map { ($0.path, $0 as any Adapter) })
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
