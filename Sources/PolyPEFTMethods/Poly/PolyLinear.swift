import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A Poly / MHR layer around a frozen `Linear`: an inventory of K LoRA skills per split, mixed row by row with the
/// weights of a router `R` (`Router`).
///
/// ```
/// poly_lora_A: [S, K, in/S, r]      poly_lora_B: [S, K, r, out/S]      poly_router.*: the router's parameters
/// (w, g) = router(x, ctx)             w: [G, S, K],  g: the group of each row of x flattened to [N*T, in]
/// row i, group g = g(i):   A_g = stack_s(sum_k w[g,s,k] A[s,k])  [in, r];   B_g = concat_s(sum_k w[g,s,k] B[s,k])  [r, out]
/// y[i] = base(x[i]) + x[i] A_g B_g / r
/// ```
/// Inputs are `[N, in]` or `[N, T, in]`. `PolyLinear` (`R = PolyRouter`) is PEFT's `poly.Linear`, routed by the
/// context's task ids through a learned logit table `poly_router.module_logits: [n_tasks, S*K]`: the factors are mixed
/// once per distinct task in the batch in evaluation, once per sample in training (one relaxed-Bernoulli draw per
/// sample, as PEFT). With a router that reads the input (`LinearRouter`) they are mixed per token or per sequence. The
/// task-table features (merging a task, per-task LoRA export, new tasks, routing options) are `PolyLinear`'s.
public final class RoutedPolyLinear<R: Router>: Module, AdapterLayer {
    public let baseLayer: Linear
    public let path: String
    public let r: Int
    public let nSplits: Int
    public let nSkills: Int
    public var mixing: MixingMode
    /// How the update is computed (same result either way; see `prefersPerRowRouting`).
    public var strategy: RoutingStrategy = .automatic
    public let loraA: Parameter            // [S, K, in/S, r]
    public let loraB: Parameter            // [S, K, r, out/S]
    /// The router, a child named `poly_router` (a `PolyRouter` may be shared with other layers under a coarser
    /// `RouterGranularity`).
    public internal(set) var router: R
    /// The task whose update is merged into the base weight, and that update `[out, in]` (`PolyLinear+Merge.swift`).
    public internal(set) var merged: (task: Int, delta: Tensor)?

    /// Wraps `base` with freshly initialised skills, as PEFT: each `A[s,k]` ~ U(-1/sqrt(in/S), 1/sqrt(in/S))
    /// (kaiming-uniform of an `[r, in/S]` matrix, transposed); `B` zero when `initWeights`, else
    /// U(-1/sqrt(r), 1/sqrt(r)); then the router from `makeRouter`, which draws from the same generator after them.
    public init<G: RandomNumberGenerator>(wrapping base: Linear, path: String, r: Int, nSkills: Int, nSplits: Int,
                                          initWeights: Bool = true, mixing: MixingMode = .parameters, using rng: inout G,
                                          router makeRouter: (inout G) throws -> R) throws {
        guard r > 0 else { throw PolyError("\(path): r must be positive, got \(r)") }
        guard nSkills >= 1, nSplits >= 1 else {
            throw PolyError("\(path): n_skills and n_splits must be at least 1, got \(nSkills), \(nSplits)")
        }
        guard base.inFeatures % nSplits == 0, base.outFeatures % nSplits == 0 else {
            throw PolyError("\(path): in_features \(base.inFeatures) and out_features \(base.outFeatures) must both be divisible by n_splits \(nSplits)")
        }
        baseLayer = base
        self.path = path
        self.r = r
        self.nSplits = nSplits
        self.nSkills = nSkills
        self.mixing = mixing
        let d = base.inFeatures / nSplits, e = base.outFeatures / nSplits
        let boundA = 1 / Float(d).squareRoot(), boundB = 1 / Float(r).squareRoot()
        loraA = Parameter(Tensor.uniform([nSplits, nSkills, d, r], low: -boundA, high: boundA, using: &rng))
        loraB = Parameter(initWeights ? Tensor.zeros([nSplits, nSkills, r, e])
                                      : Tensor.uniform([nSplits, nSkills, r, e], low: -boundB, high: boundB, using: &rng))
        router = try makeRouter(&rng)
        guard router.nSplits == nSplits, router.nSkills == nSkills else {
            throw PolyError("\(path): the router mixes \(router.nSplits) splits x \(router.nSkills) skills, the layer has \(nSplits) x \(nSkills)")
        }
        super.init()
        addChild("base_layer", base)
        addParameter("poly_lora_A", loraA)
        addParameter("poly_lora_B", loraB)
        addChild("poly_router", router)
    }

    public var base: any Layer { baseLayer }

    /// The router's parameters (`poly_router.*`) train in the router group; the skills in the adapter group.
    public func parameterRole(_ name: String) -> ParameterRole {
        name.hasPrefix("poly_router.") ? .router : .adapter
    }

    /// There is no merge of every row's update: a task-routed layer merges one task's update at a time
    /// (`PolyLinear.merge(task:)`), and a layer routed from its input has a different update for every row or sequence.
    public func merge() throws {
        guard R.self == PolyRouter.self else {
            throw ConfigError("\(path): a Poly layer routed by \(R.self) mixes its skills per input and cannot be merged")
        }
        throw ConfigError("\(path): a Poly layer merges one task's update; use merge(task:)")
    }

    /// The update `x A_g B_g / r` (or its output-mixing form) for the router's groups.
    public func delta(_ x: Variable, _ ctx: Context) throws -> Variable { try update(x, ctx).dense(for: x) }

    /// The update for the router's groups: low-rank factors mixed per group of rows, which the forward fuses into the
    /// base layer's matmuls, or (per-row routing, a merged task) a dense update.
    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let inF = baseLayer.inFeatures, outF = baseLayer.outFeatures
        guard x.value.rank == 2 || x.value.rank == 3, x.shape.last == inF else {
            throw PolyError("\(path): input \(fmt(x.shape)) must be [N, \(inF)] or [N, T, \(inF)]")
        }
        let rows = x.value.rank == 3 ? x.shape[0] * x.shape[1] : x.shape[0]
        let routing = try router.route(x, ctx, layer: path)
        let w = routing.weights                                                                        // [G, S, K]
        guard w.shape[1] == nSplits, w.shape[2] == nSkills, routing.rowGroups.count == rows else {
            throw PolyError("\(path): the router gave weights \(fmt(w.shape)) for \(routing.rowGroups.count) rows; the layer needs [G, \(nSplits), \(nSkills)] for \(rows)")
        }
        if let m = merged { return .dense(try mergedDelta(x, task: m.task, ctx)) }
        let scale = 1 / Float(r)
        if let rec = ctx.recorder {
            let recorded = routing.sampleGroups ?? routing.rowGroups
            rec.record("layer.\(path).mixing_weights", try w.value.indexSelect(axis: 0, recorded))
            if mixing == .parameters {
                let (left, right) = SkillMixing.mix(w: w.value, a: loraA.value, b: loraB.value, scale: 1)
                rec.record("layer.\(path).A_mixed", try left.indexSelect(axis: 0, recorded))
                rec.record("layer.\(path).B_mixed", try right.indexSelect(axis: 0, recorded))
            }
        }
        // Evaluation without gradients, parameter mixing: the factors are constants, mixed once per group with plain
        // loops (`SkillMixing`), and applied per group; this does the fewest flops whatever the rows per group. Rows
        // routed one by one (no sample groups: a per-token router) take the per-row kernel instead, which never
        // builds a set of mixed factors per row.
        let constants = !ctx.isTraining && !ctx.recordsGradients && mixing == .parameters
        let perRow: Bool
        switch strategy {
        case .automatic: perRow = routing.sampleGroups == nil || (!constants && Self.prefersPerRowRouting(
            rows: rows, groups: routing.groupCount, inFeatures: inF, outFeatures: outF, r: r, skills: nSkills, mixing: mixing))
        case .perGroup: perRow = false
        case .perRow: perRow = true
        }
        if perRow {
            let x2 = try x.reshaped([rows, inF])                                                       // [N*T, in]
            let d = try RoutedLowRank.apply(x2, a: ctx[loraA], b: ctx[loraB], weights: w, rowGroups: routing.rowGroups,
                                            mode: mixing, scale: scale)
            return .dense(try d.reshaped(Array(x.shape.dropLast()) + [outF]))
        }
        if constants {
            let (left, right) = SkillMixing.mix(w: w.value, a: loraA.value, b: loraB.value, scale: scale)   // [G, in, r], [G, r, out]
            return .lowRank(try LowRankUpdate(left: Variable(left), right: Variable(right), rowGroups: routing.rowGroups,
                                              groupCount: routing.groupCount, scale: 1))
        }
        let (left, right) = try factors(w, ctx)       // left: [G or 1, in, R], right: [G, R, out]
        return .lowRank(try LowRankUpdate(left: left, right: right, rowGroups: routing.rowGroups,
                                          groupCount: routing.groupCount, scale: scale))
    }

    /// The per-group low-rank factors for routing weights `w: [G, S, K]`.
    func factors(_ w: Variable, _ ctx: Context) throws -> (left: Variable, right: Variable) {
        let s = nSplits, k = nSkills, g = w.shape[0]
        let d = baseLayer.inFeatures / s, e = baseLayer.outFeatures / s
        let a = ctx[loraA], b = ctx[loraB]
        switch mixing {
        case .parameters:
            let ws = try w.permuted([1, 0, 2])                                                   // [S, G, K]
            let aMix = try ws.matmul(try a.reshaped([s, k, d * r]))                             // [S, G, d*r]
                .reshaped([s, g, d, r]).permuted([1, 0, 2, 3]).reshaped([g, s * d, r])          // [G, in, r]
            let bMix = try ws.matmul(try b.reshaped([s, k, r * e]))                             // [S, G, r*e]
                .reshaped([s, g, r, e]).permuted([1, 2, 0, 3]).reshaped([g, r, s * e])          // [G, r, out]
            return (aMix, bMix)
        case .outputs:
            let wide = try a.permuted([0, 2, 1, 3]).reshaped([1, s * d, k * r])                  // [1, in, K*r]
            let wv = try w.permuted([0, 2, 1]).reshaped([g, k, 1, s, 1])                         // [G, K, 1, S, 1]
            let bp = try b.permuted([1, 2, 0, 3]).unsqueezed(0)                                  // [1, K, r, S, e]
            return (wide, try (try wv * bp).reshaped([g, k * r, s * e]))                         // [G, K*r, out]
        }
    }
}

/// PEFT's Poly / MHR layer: skills routed by the context's task ids (`PolyRouter`).
public typealias PolyLinear = RoutedPolyLinear<PolyRouter>

extension PolyLinear {
    /// Wraps `base` with freshly initialised Poly weights, as PEFT: the skills as in
    /// `RoutedPolyLinear.init(wrapping:path:r:nSkills:nSplits:initWeights:mixing:using:router:)`, then router logits
    /// U(-1e-3, 1e-3) for `nTasks` tasks.
    public convenience init(wrapping base: Linear, path: String, r: Int, nTasks: Int, nSkills: Int, nSplits: Int,
                            initWeights: Bool = true, mixing: MixingMode = .parameters,
                            using rng: inout some RandomNumberGenerator) throws {
        guard nTasks >= 1 else { throw PolyError("\(path): n_tasks must be at least 1, got \(nTasks)") }
        try self.init(wrapping: base, path: path, r: r, nSkills: nSkills, nSplits: nSplits, initWeights: initWeights,
                      mixing: mixing, using: &rng) { g in PolyRouter(nTasks: nTasks, nSkills: nSkills, nSplits: nSplits, using: &g) }
    }

    public var nTasks: Int { router.nTasks }

    /// Evaluation-mode mixing weights for every task: `[n_tasks, S, K]`.
    public func routingWeights() throws -> Tensor { try router.allocation() }
}

/// Which kernel applies routed skills: mix factors once per group of rows sharing weights, or route per row with
/// wide matmuls. Both compute the same update.
public enum RoutingStrategy: String, Sendable, CaseIterable {
    case automatic, perGroup, perRow
}

/// The widths of the wrapped `Linear`, so that methods which scale inputs or outputs (IA3) can wrap this adapter.
extension RoutedPolyLinear: FeatureLayer {
    public var inFeatures: Int { baseLayer.inFeatures }
    public var outFeatures: Int { baseLayer.outFeatures }
}
