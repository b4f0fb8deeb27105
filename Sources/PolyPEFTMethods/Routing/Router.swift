import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// What decides, row by row, how a routed layer mixes its skills: mixing weights for G groups of rows, and the group
/// of every row of the input.
///
/// ```
/// x: [N, in] or [N, T, in] (T = 1 for [N, in]), rows flattened to [N*T] sample-major (row n*T + t)
/// route(x, ctx) -> weights w: [G, S, K]    (for each group g and split s, mixing weights over the K skills)
///                  rowGroups: [N*T]        (row i mixes with w[rowGroups[i]])
/// ```
/// A layer mixes its factors with `w[g]` once per group (or applies the weights per row when groups are small; see
/// `RoutedPolyLinear`), so rows that share weights should share a group: the fewer the groups, the cheaper the update.
/// Routers come in two kinds:
/// - **from the context's task ids** (`PolyRouter`: a learned row of logits per task): a group per distinct task in
///   evaluation, a group per sample in training (each sample draws its own relaxed-Bernoulli weights); every token of
///   a sample is in its sample's group (`Routing(weights:sampleGroups:tokens:)`);
/// - **from the layer input** (`LinearRouter`): a group per token (G = N*T, `Routing(weights:rowGroups:)`) or per
///   sequence (G = N, pooled over its tokens).
///
/// A router is a `Module`: its parameters sit in the model tree under the layer that owns it (`poly_router.*`), are
/// saved with the adapter, and train in the router group (`ParameterRole.router`). Randomness comes from the context
/// (`Context.uniformDraws(_:for:)`), so a layer's draws can be injected by path.
public protocol Router: Module {
    /// Splits S of the weights: the layer's input and output features are cut into S blocks, each mixed on its own.
    var nSplits: Int { get }
    /// Skills K mixed by each split.
    var nSkills: Int { get }
    /// The routing of input `x` for the layer at `path` (which names the layer in errors and keys its injected draws).
    func route(_ x: Variable, _ ctx: Context, layer path: String) throws -> Routing
}

/// Mixing weights and the group of every row (see `Router`).
public struct Routing {
    /// Mixing weights `[G, S, K]`.
    public let weights: Variable
    /// The group of each row of the flattened input, `[N*T]`, each in `0..<G`.
    public let rowGroups: [Int]
    /// The group of each sample, `[N]`, when all rows of a sample share one (task or per-sequence routing), else nil.
    /// Recorders keep per-sample weights `w[sampleGroups]` then, per-row weights `w[rowGroups]` otherwise.
    public let sampleGroups: [Int]?

    /// Number of groups G.
    public var groupCount: Int { weights.shape[0] }

    /// One group per sample, shared by its `tokens` rows: `rowGroups[n*T + t] = sampleGroups[n]`.
    public init(weights: Variable, sampleGroups: [Int], tokens: Int) throws {
        guard tokens >= 1 else { throw TensorError("routing", "tokens per sample must be at least 1, got \(tokens)") }
        try Routing.check(weights, groups: sampleGroups)
        var rows = sampleGroups                                                           // [N*T]
        if tokens > 1 {
            rows = []
            rows.reserveCapacity(sampleGroups.count * tokens)
            for g in sampleGroups { for _ in 0..<tokens { rows.append(g) } }
        }
        self.weights = weights
        self.rowGroups = rows
        self.sampleGroups = sampleGroups
    }

    /// A group for each row on its own (per-token routing).
    public init(weights: Variable, rowGroups: [Int]) throws {
        try Routing.check(weights, groups: rowGroups)
        self.weights = weights
        self.rowGroups = rowGroups
        sampleGroups = nil
    }

    private static func check(_ weights: Variable, groups: [Int]) throws {
        guard weights.value.rank == 3 else {
            throw TensorError("routing", "weights \(fmt(weights.shape)) must be [G, S, K]")
        }
        let g = weights.shape[0]
        if let bad = groups.first(where: { UInt(bitPattern: $0) >= UInt(g) }) {
            throw TensorError("routing", "group \(bad) is not in 0..<\(g) (weights \(fmt(weights.shape)))")
        }
    }
}

extension Variable {
    /// Samples N and tokens per sample T of a routed layer's input `[N, in]` (T = 1) or `[N, T, in]`.
    func routedRows(layer path: String) throws -> (samples: Int, tokens: Int) {
        guard value.rank == 2 || value.rank == 3 else {
            throw TensorError("routing", "\(path): input \(fmt(shape)) must be [N, in] or [N, T, in]")
        }
        return (shape[0], value.rank == 3 ? shape[1] : 1)
    }
}
