import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Routing variants from the Polytropon / MHR research code (microsoft/mttl), on top of PEFT's router. Every default
/// reproduces PEFT exactly; a config carries non-default options under the extension key `polypeft_routing` (an
/// object holding only the fields that differ from the defaults), so a default config stays byte-identical to PEFT's.
///
/// For one task row, with logits `L: [S, K]` (PEFT's pipeline plus the options, in this order):
/// ```
/// P = RelaxedBernoulli(temperature, L).rsample()      training      (temperature: "temperature", default 1)
/// P = sigmoid(L)                                       evaluation
/// straight_through: P <- round(P) forward, dP backward (gradient of the soft P; hard 0/1 mixing)
/// dropout p (training only): P <- P * m / (1 - p),  m ~ Bernoulli(1 - p) per (sample, split, skill), drawn from
///                            the context's generator after the relaxed-Bernoulli noise
/// shared_skill: P[s, K-1] <- 1 for every task (the last skill is always on; its logits get no gradient)
/// w[s, k] = P[s, k] / (sum_k' P[s, k'] + 1e-12)
/// unknown_tasks "uniform": a sample whose task id is `TaskTable.unknownID` (-1) gets w[s, k] = 1/K (no gradient);
///                          "error" (default): such an id is an error, as any id outside 0..<n_tasks
/// ```
/// `granularity` says which layers share one router (one `Parameter`, so its gradient sums over those layers):
/// `layer` (PEFT: one router per adapted layer), `prefix(n)` (layers whose paths agree on their first n dotted
/// components share, e.g. n = 3 shares within `encoder.block.0`), `model` (one router for every layer).
public struct RoutingOptions: Equatable, Sendable {
    public var straightThrough = false
    public var temperature: Float = 1
    public var dropout: Float = 0
    public var sharedSkill = false
    public var granularity: RouterGranularity = .layer
    public var unknownTasks: UnknownTaskPolicy = .error

    public init(straightThrough: Bool = false, temperature: Float = 1, dropout: Float = 0, sharedSkill: Bool = false,
                granularity: RouterGranularity = .layer, unknownTasks: UnknownTaskPolicy = .error) {
        self.straightThrough = straightThrough
        self.temperature = temperature
        self.dropout = dropout
        self.sharedSkill = sharedSkill
        self.granularity = granularity
        self.unknownTasks = unknownTasks
    }

    /// True when every field has PEFT's behaviour.
    public var isDefault: Bool { self == RoutingOptions() }

    /// True when, for a forward in training (`training`) or evaluation mode, the weights follow PEFT's pipeline
    /// (lookup, sigmoid or relaxed-Bernoulli sample at `temperature`, normalisation), which `RoutingWeights` computes
    /// as one fused kernel. Granularity only decides which layers share the router; unknown tasks are checked per batch.
    func keepsPEFTPipeline(training: Bool) -> Bool {
        !straightThrough && !sharedSkill && (!training || dropout == 0)
    }

    /// Checks values; `context` names the source in errors.
    public func validate(context: String = "routing options") throws {
        guard temperature.isFinite && temperature > 0 else {
            throw ConfigError("\(context): temperature must be a positive number, got \(temperature)")
        }
        guard dropout >= 0 && dropout < 1 else { throw ConfigError("\(context): dropout must be in [0, 1), got \(dropout)") }
        if case .prefix(let n) = granularity, n < 1 {
            throw ConfigError("\(context): granularity prefix length must be at least 1, got \(n)")
        }
    }

    /// The `polypeft_routing` object: only fields that differ from the defaults.
    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if straightThrough { o["straight_through"] = true }
        if temperature != 1 { o["temperature"] = .double(RoutingOptions.shortest(temperature)) }
        if dropout != 0 { o["dropout"] = .double(RoutingOptions.shortest(dropout)) }
        if sharedSkill { o["shared_skill"] = true }
        if granularity != .layer { o["granularity"] = .string(granularity.description) }
        if unknownTasks != .error { o["unknown_tasks"] = .string(unknownTasks.rawValue) }
        return .object(o)
    }

    /// The decimal a person wrote for a `Float` (0.1, not 0.10000000149011612); it reads back to the same `Float`.
    static func shortest(_ x: Float) -> Double { Double("\(x)") ?? Double(x) }

    /// Reads a `polypeft_routing` object; unknown fields are errors (they would change the maths silently).
    public init(json: JSONValue, context: String = "polypeft_routing") throws {
        let f = try JSONObjectReader(json, context: context)
        let known: Set<String> = ["straight_through", "temperature", "dropout", "shared_skill", "granularity", "unknown_tasks"]
        if let extra = f.unknown(known: known).keys.sorted().first {
            throw ConfigError("\(context): unknown routing option '\(extra)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        straightThrough = try f.bool("straight_through", default: false)
        temperature = Float(try f.double("temperature", default: 1))
        dropout = Float(try f.double("dropout", default: 0))
        sharedSkill = try f.bool("shared_skill", default: false)
        if let g = try f.string("granularity") { granularity = try RouterGranularity(parsing: g, context: context) }
        if let u = try f.string("unknown_tasks") {
            guard let p = UnknownTaskPolicy(rawValue: u) else {
                throw ConfigError("\(context): 'unknown_tasks' must be one of error, uniform, got \"\(u)\"")
            }
            unknownTasks = p
        }
        try validate(context: context)
    }
}

/// What a routed layer does with a sample whose task is not in its task table (id `TaskTable.unknownID`).
public enum UnknownTaskPolicy: String, Sendable, Codable, CaseIterable {
    /// Throw (PEFT's behaviour for an id out of range, minus its silent wrap-around of negative ids).
    case error
    /// Route uniformly over skills: w[s, k] = 1/K.
    case uniform
}

/// Which layers share one router; written `"layer"`, `"model"` or `"prefix:<n>"`.
public enum RouterGranularity: Equatable, Sendable, CustomStringConvertible {
    case layer
    case prefix(Int)
    case model

    public init(parsing text: String, context: String = "granularity") throws {
        switch text {
        case "layer": self = .layer
        case "model": self = .model
        default:
            guard text.hasPrefix("prefix:"), let n = Int(text.dropFirst("prefix:".count)), n >= 1 else {
                throw ConfigError("\(context): granularity must be \"layer\", \"model\" or \"prefix:<n>\" (n >= 1), got \"\(text)\"")
            }
            self = .prefix(n)
        }
    }

    public var description: String {
        switch self {
        case .layer: return "layer"
        case .model: return "model"
        case .prefix(let n): return "prefix:\(n)"
        }
    }

    /// The sharing key of a layer path: layers with equal keys share one router.
    public func key(for path: String) -> String {
        switch self {
        case .layer: return path
        case .model: return ""
        case .prefix(let n): return path.split(separator: ".", omittingEmptySubsequences: false).prefix(n).joined(separator: ".")
        }
    }
}
