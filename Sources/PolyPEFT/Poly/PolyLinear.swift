/// A Poly / MHR layer around a frozen `Linear` (PEFT's `poly.Linear`).
///
/// ```
/// poly_lora_A: [S, K, in/S, r]      poly_lora_B: [S, K, r, out/S]      poly_router.module_logits: [n_tasks, S*K]
/// w = router(task)                                   // [S, K]
/// A_full = stack_s(sum_k w[s,k] A[s,k])  [in, r];   B_full = concat_s(sum_k w[s,k] B[s,k])  [r, out]
/// y = base(x) + x A_full B_full / r
/// ```
/// Inputs are `[N, in]` or `[N, T, in]` with one task id per sample `n`. In evaluation the factors are mixed once per
/// distinct task in the batch; in training (one relaxed-Bernoulli draw per sample, as PEFT) once per sample.
public final class PolyLinear: Module, AdapterLayer {
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
    /// The router (shared with other layers under a coarser `RouterGranularity`).
    public internal(set) var router: PolyRouter
    /// The task whose update is merged into the base weight, and that update `[out, in]` (`PolyLinear+Merge.swift`).
    public internal(set) var merged: (task: Int, delta: Tensor)?

    /// Wraps `base` with freshly initialised Poly weights, as PEFT: each `A[s,k]` ~ U(-1/sqrt(in/S), 1/sqrt(in/S))
    /// (kaiming-uniform of an `[r, in/S]` matrix, transposed); `B` zero when `initWeights`, else
    /// U(-1/sqrt(r), 1/sqrt(r)); router logits U(-1e-3, 1e-3).
    public init(wrapping base: Linear, path: String, r: Int, nTasks: Int, nSkills: Int, nSplits: Int,
                initWeights: Bool = true, mixing: MixingMode = .parameters,
                using rng: inout some RandomNumberGenerator) throws {
        guard r > 0 else { throw PolyError("\(path): r must be positive, got \(r)") }
        guard nTasks >= 1, nSkills >= 1, nSplits >= 1 else {
            throw PolyError("\(path): n_tasks, n_skills and n_splits must be at least 1, got \(nTasks), \(nSkills), \(nSplits)")
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
        router = PolyRouter(nTasks: nTasks, nSkills: nSkills, nSplits: nSplits, using: &rng)
        super.init()
        addChild("base_layer", base)
        addParameter("poly_lora_A", loraA)
        addParameter("poly_lora_B", loraB)
        addChild("poly_router", router)
    }

    public var nTasks: Int { router.nTasks }

    public var base: any Layer { baseLayer }

    /// Poly merges one task's update at a time (`merge(task:)`); there is no task-free merge.
    public func merge() throws {
        throw ConfigError("\(path): a Poly layer merges one task's update; use merge(task:)")
    }

    /// The update `x A_full B_full / r` (or its output-mixing form) for the context's task ids.
    public func delta(_ x: Variable, _ ctx: Context) throws -> Variable { try update(x, ctx).dense(for: x) }

    /// The update for the context's task ids: low-rank factors mixed per group of rows, which the forward fuses into
    /// the base layer's matmuls, or (per-row routing, a merged task) a dense update.
    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let inF = baseLayer.inFeatures, outF = baseLayer.outFeatures
        guard x.value.rank == 2 || x.value.rank == 3, x.shape.last == inF else {
            throw PolyError("\(path): input \(fmt(x.shape)) must be [N, \(inF)] or [N, T, \(inF)]")
        }
        let n = x.shape[0], t = x.value.rank == 3 ? x.shape[1] : 1
        let tasks = try TaskBatch(ctx.taskIDs, batch: n, nTasks: nTasks, layer: path,
                                  allowsUnknown: router.options.unknownTasks == .uniform)
        if let m = merged { return .dense(try mergedDelta(x, task: m.task, tasks: tasks, ctx)) }
        // Groups: one per distinct task in evaluation, one per sample in training (independent noise per sample).
        let (groupTasks, groupOfSample) = ctx.isTraining ? (tasks.ids, Array(0..<n)) : (tasks.distinct, tasks.groupOfSample)
        let w = try router.weights(rowTasks: groupTasks, ctx, noise: ctx.injectedUniformNoise[path])     // [G, S, K]
        var rowGroups = groupOfSample                                                                  // [N*T]
        if t > 1 {
            rowGroups = []
            rowGroups.reserveCapacity(n * t)
            for g in groupOfSample { for _ in 0..<t { rowGroups.append(g) } }
        }
        let scale = 1 / Float(r)
        if let rec = ctx.recorder {
            rec.record("layer.\(path).mixing_weights", try w.value.indexSelect(axis: 0, groupOfSample))
            if mixing == .parameters {
                let (left, right) = SkillMixing.mix(w: w.value, a: loraA.value, b: loraB.value, scale: 1)
                rec.record("layer.\(path).A_mixed", try left.indexSelect(axis: 0, groupOfSample))
                rec.record("layer.\(path).B_mixed", try right.indexSelect(axis: 0, groupOfSample))
            }
        }
        // Evaluation without gradients, parameter mixing: the factors are constants, mixed once per task with plain
        // loops (`SkillMixing`), and applied per group; this does the fewest flops whatever the rows per task.
        let constants = !ctx.isTraining && !ctx.recordsGradients && mixing == .parameters
        let perRow: Bool
        switch strategy {
        case .automatic: perRow = !constants && PolyLinear.prefersPerRowRouting(
            rows: n * t, groups: groupTasks.count, inFeatures: inF, outFeatures: outF, r: r, skills: nSkills, mixing: mixing)
        case .perGroup: perRow = false
        case .perRow: perRow = true
        }
        if perRow {
            let x2 = try x.reshaped([n * t, inF])                                                     // [N*T, in]
            let d = try RoutedLowRank.apply(x2, a: ctx[loraA], b: ctx[loraB], weights: w, rowGroups: rowGroups,
                                            mode: mixing, scale: scale)
            return .dense(try d.reshaped(Array(x.shape.dropLast()) + [outF]))
        }
        if constants {
            let (left, right) = SkillMixing.mix(w: w.value, a: loraA.value, b: loraB.value, scale: scale)   // [G, in, r], [G, r, out]
            return .lowRank(try LowRankUpdate(left: Variable(left), right: Variable(right), rowGroups: rowGroups,
                                              groupCount: groupTasks.count, scale: 1))
        }
        let (left, right) = try factors(w, ctx)       // left: [G or 1, in, R], right: [G, R, out]
        return .lowRank(try LowRankUpdate(left: left, right: right, rowGroups: rowGroups, groupCount: groupTasks.count,
                                          scale: scale))
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

    /// Evaluation-mode mixing weights for every task: `[n_tasks, S, K]`.
    public func routingWeights() throws -> Tensor { try router.allocation() }
}

/// Which kernel applies routed skills: mix factors once per group of rows sharing weights, or route per row with
/// wide matmuls. Both compute the same update.
public enum RoutingStrategy: String, Sendable, CaseIterable {
    case automatic, perGroup, perRow
}

/// Errors of Poly configuration and use, naming the layer.
public struct PolyError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The widths of the wrapped `Linear`, so that methods which scale inputs or outputs (IA3) can wrap this adapter.
extension PolyLinear: FeatureLayer {
    public var inFeatures: Int { baseLayer.inFeatures }
    public var outFeatures: Int { baseLayer.outFeatures }
}
