import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Bottleneck adapters as the adapters library defines them (its `BnConfig` and presets), in PolyPEFT's namespace
/// (`peft_type` `"POLYPEFT_BOTTLENECK"`; PEFT has no bottleneck adapters). Every key has the adapters library's name
/// and default:
///
/// ```
/// mh_adapter, output_adapter, cross_adapter   where: after self-attention, the feed-forward, cross-attention
/// reduction_factor 16 | {"0": 8, "default": 16}   bottleneck = max(1, floor(hidden / factor)), per layer by index
/// non_linearity "relu"        transformers' ACT2FN names (relu, gelu, gelu_new, swish, silu, tanh, sigmoid, linear)
/// original_ln_before false, original_ln_after true, residual_before_ln true | false | "post_add"
/// ln_before false, ln_after false, adapter_residual_before_ln false
/// init_weights "bert" | "mam_adapter" | "houlsby", init_weights_seed null
/// is_parallel false, scaling 1.0 | "learned" | "channel", use_gating false, dropout 0.0, leave_out []
/// phm_layer false (Compacter), phm_dim 4, phm_rank 1, phm_bias true, factorized_phm_W true, shared_phm_rule true,
/// factorized_phm_rule false, shared_W_phm false, learn_phm true, phm_c_init "normal", phm_init_range 0.0001,
/// hypercomplex_nonlinearity "glorot-uniform"
/// ```
/// The presets are `seqBn()` (Pfeiffer), `doubleSeqBn()` (Houlsby), `parBn()` (He et al.), `compacter()` and
/// `compacterPlusPlus()`. `BottleneckAdapter` has the maths. Not supported, each refused with an error naming the key:
/// invertible adapters (`inv_adapter`) and `stochastic_depth` above 0.
///
/// Layers are numbered as the adapters library numbers them: an encoder-decoder's decoder layers follow its encoder's
/// (`leave_out: [2]` on a 2 + 2 layer T5 leaves out decoder block 0), and `reduction_factor` maps use those numbers.
public struct BnConfig: GateableConfig, Equatable, Codable {
    public static let peftType = "POLYPEFT_BOTTLENECK"

    /// `reduction_factor`: one factor, or factors by layer index with a default.
    public enum ReductionFactor: Equatable, Sendable {
        case uniform(Double)
        /// Keys are layer indices as strings (the JSON keys), plus an optional `"default"`.
        case perLayer([String: Double])

        /// The factor of layer `index`; a map without that layer and without a default is an error.
        public func factor(layer index: Int) throws -> Double {
            switch self {
            case .uniform(let f): return f
            case .perLayer(let m):
                guard let f = m[String(index)] ?? m["default"] else {
                    throw ConfigError("reduction_factor gives no factor for layer \(index) and no \"default\"")
                }
                return f
            }
        }
    }

    /// `scaling`: a constant, or a learned scalar (`"learned"`, starts at 1) or per-channel vector (`"channel"`).
    public enum Scaling: Equatable, Sendable {
        case constant(Double), learned, channel
    }

    /// `residual_before_ln`: where the adapter's own residual is taken (sequential adapters).
    public enum ResidualSource: Equatable, Sendable {
        /// `true`: the sublayer output, before the model's residual and norm.
        case sublayerOutput
        /// `"post_add"`: the sum of sublayer output and residual, before the norm.
        case postAdd
        /// `false`: the adapter's input (after the norm when `original_ln_before`).
        case adapterInput
    }

    /// `init_weights`.
    public enum Initialization: String, CaseIterable, Sendable {
        case bert, mamAdapter = "mam_adapter", houlsby
    }

    /// `phm_c_init`.
    public enum RuleInitialization: String, CaseIterable, Sendable {
        case normal, uniform
    }

    public var common = PeftCommonConfig()
    public var mhAdapter = false
    public var outputAdapter = false
    public var crossAdapter = false
    public var reductionFactor = ReductionFactor.uniform(16)
    public var nonLinearity = "relu"
    public var originalLNBefore = false
    public var originalLNAfter = true
    public var lnBefore = false
    public var lnAfter = false
    public var initWeights = Initialization.bert
    public var initWeightsSeed: Int?
    public var isParallel = false
    public var scaling = Scaling.constant(1)
    public var useGating = false
    /// Tasks of task-routed gates (PolyPEFT's `polypeft_task_gates`, `MethodGate`), nil for the library's input gates.
    public var taskGates: Int?
    public var residualBeforeLN = ResidualSource.sublayerOutput
    public var adapterResidualBeforeLN = false
    public var leaveOut: [Int] = []
    public var dropout = 0.0
    public var phmLayer = false
    public var phmDim = 4
    public var factorizedPhmW = true
    public var sharedWPhm = false
    public var sharedPhmRule = true
    public var factorizedPhmRule = false
    public var phmCInit = RuleInitialization.normal
    public var phmInitRange = 0.0001
    public var learnPhm = true
    public var hypercomplexNonlinearity = "glorot-uniform"
    public var phmRank = 1
    public var phmBias = true
    public var unknownKeys: [String: JSONValue] = [:]

    /// The adapters library's `BnConfig` defaults (no location enabled: a preset or the caller chooses).
    public init() {}

    /// `SeqBnConfig` (Pfeiffer et al. 2020): after the feed-forward, the model's norm before the adapter, ReLU, 16.
    public static func seqBn(reductionFactor: Double = 16) -> BnConfig {
        var c = BnConfig()
        c.outputAdapter = true
        c.originalLNBefore = true
        c.reductionFactor = .uniform(reductionFactor)
        return c
    }

    /// `DoubleSeqBnConfig` (Houlsby et al. 2019): after attention and after the feed-forward, swish, 16.
    public static func doubleSeqBn(reductionFactor: Double = 16) -> BnConfig {
        var c = BnConfig()
        c.mhAdapter = true
        c.outputAdapter = true
        c.nonLinearity = "swish"
        c.reductionFactor = .uniform(reductionFactor)
        return c
    }

    /// `ParBnConfig` (He et al. 2021): parallel to the feed-forward, ReLU, factor 2, scaling 4, `mam_adapter` init
    /// (the up projection starts at zero).
    public static func parBn(reductionFactor: Double = 2) -> BnConfig {
        var c = BnConfig()
        c.outputAdapter = true
        c.isParallel = true
        c.scaling = .constant(4)
        c.initWeights = .mamAdapter
        c.reductionFactor = .uniform(reductionFactor)
        return c
    }

    /// `CompacterConfig` (Mahabadi et al. 2021): `doubleSeqBn` with PHM projections, GELU, factor 32.
    public static func compacter(reductionFactor: Double = 32, phmDim: Int = 4) -> BnConfig {
        doubleSeqBn(reductionFactor: reductionFactor).withPHM(phmDim: phmDim)
    }

    /// `CompacterPlusPlusConfig`: `seqBn` with PHM projections, GELU, factor 32.
    public static func compacterPlusPlus(reductionFactor: Double = 32, phmDim: Int = 4) -> BnConfig {
        seqBn(reductionFactor: reductionFactor).withPHM(phmDim: phmDim)
    }

    /// The config with Compacter's PHM projections and GELU.
    func withPHM(phmDim: Int) -> BnConfig {
        var c = self
        c.phmLayer = true
        c.nonLinearity = "gelu"
        c.phmDim = phmDim
        return c
    }

    public static var fields: [ConfigField<BnConfig>] {
        [
            .bool("mh_adapter", \.mhAdapter),
            .bool("output_adapter", \.outputAdapter),
            .bool("cross_adapter", \.crossAdapter),
            ConfigField("reduction_factor", read: { r, c in
                guard let v = r.present("reduction_factor"), v != .null else { return }
                if let x = v.doubleValue { c.reductionFactor = .uniform(x); return }
                guard v.objectValue != nil else { throw r.fail("reduction_factor", "a number or an object of numbers", v) }
                c.reductionFactor = .perLayer(try r.numberMap("reduction_factor"))
            }, write: { c in
                switch c.reductionFactor {
                case .uniform(let x): return .number(x)
                case .perLayer(let m): return .object(m.mapValues { JSONValue.number($0) })
                }
            }),
            .string("non_linearity", \.nonLinearity),
            .bool("original_ln_before", \.originalLNBefore),
            .bool("original_ln_after", \.originalLNAfter),
            .bool("ln_before", \.lnBefore),
            .bool("ln_after", \.lnAfter),
            .choice("init_weights", \.initWeights),
            .optionalInt("init_weights_seed", \.initWeightsSeed),
            .bool("is_parallel", \.isParallel),
            ConfigField("scaling", read: { r, c in
                guard let v = r.present("scaling"), v != .null else { return }
                switch v {
                case .string("learned"): c.scaling = .learned
                case .string("channel"): c.scaling = .channel
                default:
                    guard let x = v.doubleValue else { throw r.fail("scaling", "a number, \"learned\" or \"channel\"", v) }
                    c.scaling = .constant(x)
                }
            }, write: { c in
                switch c.scaling {
                case .constant(let x): return .double(x)
                case .learned: return .string("learned")
                case .channel: return .string("channel")
                }
            }),
            .bool("use_gating", \.useGating),
            .taskGates,
            ConfigField("residual_before_ln", read: { r, c in
                guard let v = r.present("residual_before_ln"), v != .null else { return }
                switch v {
                case .bool(true): c.residualBeforeLN = .sublayerOutput
                case .bool(false): c.residualBeforeLN = .adapterInput
                case .string("post_add"): c.residualBeforeLN = .postAdd
                default: throw r.fail("residual_before_ln", "true, false or \"post_add\"", v)
                }
            }, write: { c in
                switch c.residualBeforeLN {
                case .sublayerOutput: return .bool(true)
                case .adapterInput: return .bool(false)
                case .postAdd: return .string("post_add")
                }
            }),
            .bool("adapter_residual_before_ln", \.adapterResidualBeforeLN),
            .layerIndices("leave_out", \.leaveOut),
            .double("dropout", \.dropout),
            .bool("phm_layer", \.phmLayer),
            .int("phm_dim", \.phmDim),
            .bool("factorized_phm_W", \.factorizedPhmW),
            .bool("shared_W_phm", \.sharedWPhm),
            .bool("shared_phm_rule", \.sharedPhmRule),
            .bool("factorized_phm_rule", \.factorizedPhmRule),
            .choice("phm_c_init", \.phmCInit),
            .double("phm_init_range", \.phmInitRange),
            .bool("learn_phm", \.learnPhm),
            .string("hypercomplex_nonlinearity", \.hypercomplexNonlinearity),
            .int("phm_rank", \.phmRank),
            .bool("phm_bias", \.phmBias),
        ]
    }

    /// Keys of the adapters library's config that select what PolyPEFT does not implement.
    public static var fixedKeys: [String: [JSONValue]] {
        ["inv_adapter": [.null], "stochastic_depth": [.double(0), .int(0)]]
    }

    public static var inertKeys: [String: JSONValue] {
        ["inv_adapter_reduction_factor": .null]
    }

    /// Bottleneck adapters are placed by location, not by module names: no target fields.
    public static var commonKeys: Set<String> { PeftCommonConfig.allKeys.subtracting(PeftCommonConfig.targetKeys) }

    /// The adapters library's `hypercomplex_nonlinearity` values.
    public static let hypercomplexNonlinearities = ["phm", "glorot-normal", "glorot-uniform", "normal"]

    /// The activation `non_linearity` names.
    public var activation: Activation.Kind? { Activation.kind(huggingFaceName: nonLinearity) }

    /// The locations this config fills.
    public var locations: [SublayerLocation] {
        [(mhAdapter, SublayerLocation.attention), (crossAdapter, .crossAttention), (outputAdapter, .feedForward)]
            .filter(\.0).map(\.1)
    }

    /// Checks values the adapters library rejects, and combinations it fails on.
    public func validate(context: String = "BnConfig") throws {
        try validateTaskGates(context: context)
        guard activation != nil else {
            let known = Activation.huggingFaceNames.map(\.name).joined(separator: ", ")
            throw ConfigError("\(context): non_linearity '\(nonLinearity)' is not supported (\(known))")
        }
        let factors: [(String, Double)]
        switch reductionFactor {
        case .uniform(let f): factors = [("reduction_factor", f)]
        case .perLayer(let m):
            factors = m.sorted { $0.key < $1.key }.map { ("reduction_factor[\"\($0.key)\"]", $0.value) }
            for k in m.keys where k != "default" && Int(k).map({ $0 < 0 }) ?? true {
                throw ConfigError("\(context): reduction_factor key '\(k)' is neither a layer index nor \"default\"")
            }
        }
        for (key, f) in factors where !(f.isFinite && f > 0) {
            throw ConfigError("\(context): \(key) must be a finite number above 0, got \(f)")
        }
        if case .constant(let s) = scaling, !s.isFinite {
            throw ConfigError("\(context): scaling must be finite, got \(s)")
        }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else {
            throw ConfigError("\(context): dropout must be in [0, 1), got \(dropout)")
        }
        if residualBeforeLN == .postAdd && !(originalLNBefore && !isParallel) {
            throw ConfigError("\(context): residual_before_ln \"post_add\" needs original_ln_before true on a sequential adapter "
                + "(the adapters library has no residual to take otherwise)")
        }
        guard !locations.isEmpty else {
            throw ConfigError("\(context): no location enabled (set mh_adapter, output_adapter or cross_adapter)")
        }
        if phmLayer {
            guard (1...64).contains(phmDim) else { throw ConfigError("\(context): phm_dim must be in 1...64, got \(phmDim)") }
            guard (1...4096).contains(phmRank) else { throw ConfigError("\(context): phm_rank must be in 1...4096, got \(phmRank)") }
            guard initWeights == .bert else {
                throw ConfigError("\(context): init_weights \"\(initWeights.rawValue)\" with phm_layer fails in the adapters "
                    + "library (it initialises a .weight the PHM layer does not have); use \"bert\"")
            }
            guard Self.hypercomplexNonlinearities.contains(hypercomplexNonlinearity) else {
                throw ConfigError("\(context): hypercomplex_nonlinearity must be one of \(Self.hypercomplexNonlinearities.joined(separator: ", ")), "
                    + "got \"\(hypercomplexNonlinearity)\"")
            }
            if sharedWPhm {
                guard factorizedPhmW else {
                    throw ConfigError("\(context): shared_W_phm needs factorized_phm_W true (the adapters library fails on an "
                        + "unfactorized shared W)")
                }
                guard case .uniform(let f) = reductionFactor, f == f.rounded() else {
                    throw ConfigError("\(context): shared_W_phm needs one whole reduction_factor for every layer (the model's W has "
                        + "one shape; the adapters library computes hidden // reduction_factor)")
                }
            }
            guard phmInitRange.isFinite, phmInitRange >= 0 else {
                throw ConfigError("\(context): phm_init_range must be finite and not negative, got \(phmInitRange)")
            }
        }
    }

    /// The bottleneck width at layer `index` of a stream `hidden` wide: `max(1, floor(hidden / factor))`, as the
    /// adapters library computes `int(hidden_size // reduction_factor)`. A factor below 1 widens; a projection of more
    /// than `PromptLearningSizes.maxElements` scalars is an error.
    public func bottleneckSize(hidden: Int, layer index: Int) throws -> Int {
        let f = try reductionFactor.factor(layer: index)
        let q = (Double(hidden) / f).rounded(.down)
        guard q * Double(Swift.max(hidden, 1)) <= Double(PromptLearningSizes.maxElements) else {
            throw ConfigError("reduction_factor \(f) gives a bottleneck of \(q) for width \(hidden): too large")
        }
        return max(1, Int(q))
    }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        try BottleneckAdapter.attach(self, to: model, using: &rng)
    }

    public var summary: String {
        let places = locations.map(\.rawValue).joined(separator: "+")
        let factor: String
        switch reductionFactor {
        case .uniform(let f): factor = formatFixed(f, digits: f == f.rounded() ? 0 : 2)
        case .perLayer: factor = "per layer"
        }
        return "Bottleneck  \(isParallel ? "parallel" : "sequential")  \(places)  reduction_factor=\(factor)  "
            + "non_linearity=\(nonLinearity)\(phmLayer ? "  phm_dim=\(phmDim)" : "")"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
