import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Poly's router: a learned logit per (task, split, skill), turned into per-split mixing weights over skills.
///
/// ```
/// module_logits: [n_tasks, S*K]          (element [t, s*K + k])
/// L = module_logits[task] viewed [S, K]
/// eval:  P = sigmoid(L)
/// train: P = RelaxedBernoulli(T, L).rsample()   (one draw per sample, split and skill)
/// w[s, k] = P[s, k] / (sum_k' P[s, k'] + 1e-12)
/// ```
/// `options` adds the research variants (straight-through, dropout, shared skill, uniform routing of unknown tasks;
/// see `RoutingOptions`); the defaults are PEFT's pipeline above, operation for operation.
///
/// Rows for tasks added after training (`NewTasks.swift`) live in a separate parameter `newLogits`
/// (`[n_new, S*K]`, named `new_module_logits`) so that they can train while `module_logits` stays frozen; task ids
/// `0..<n_old` index `module_logits`, `n_old..<n_tasks` index `newLogits`. `PeftModel.commitNewTasks()` folds them
/// back into `module_logits`.
public final class PolyRouter: Module {
    public let nSkills: Int
    public let nSplits: Int
    public let moduleLogits: Parameter     // [n_old, S*K]
    /// Router rows of tasks added after training, trained apart from `moduleLogits`.
    public internal(set) var newLogits: Parameter?     // [n_new, S*K]
    /// Routing variants; the defaults are PEFT's.
    public var options = RoutingOptions()

    /// PEFT's initialisation: logits ~ U(-1e-3, 1e-3).
    public init(nTasks: Int, nSkills: Int, nSplits: Int, using rng: inout some RandomNumberGenerator) {
        self.nSkills = nSkills
        self.nSplits = nSplits
        moduleLogits = Parameter(Tensor.uniform([nTasks, nSplits * nSkills], low: -1e-3, high: 1e-3, using: &rng))
        super.init()
        addParameter("module_logits", moduleLogits)
    }

    /// Number of tasks, including added ones.
    public var nTasks: Int { moduleLogits.value.shape[0] + (newLogits?.value.shape[0] ?? 0) }

    /// Relaxed-Bernoulli temperature in training (PEFT: 1).
    public var temperature: Float {
        get { options.temperature }
        set { options.temperature = newValue }
    }

    /// Lists `new_module_logits` after `module_logits` while added rows are pending.
    public override func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        var out = super.namedParameters(prefix: prefix)
        if let p = newLogits { out.append((prefix.isEmpty ? "new_module_logits" : prefix + ".new_module_logits", p)) }
        return out
    }

    /// The whole logit table `[n_tasks, S*K]` as an input of this forward.
    func logitTable(_ ctx: Context) throws -> Variable {
        guard let extra = newLogits else { return ctx[moduleLogits] }
        return try Variable.concatenate([ctx[moduleLogits], ctx[extra]], axis: 0)
    }

    /// Mixing weights `[G, S, K]` for `rowTasks` (one task id per group of rows; `TaskTable.unknownID` routes
    /// uniformly when `options.unknownTasks` is `.uniform`).
    ///
    /// In training, `noise` (`[G, S, K]` uniforms) is used when given, else drawn from the context's generator.
    /// `route` (the `Router` requirement) groups a batch's rows and calls this.
    public func weights(rowTasks: [Int], _ ctx: Context, noise: Tensor? = nil) throws -> Variable {
        let g = rowTasks.count, s = nSplits, k = nSkills
        let unknown = rowTasks.map { $0 == TaskTable.unknownID }
        let hasUnknown = unknown.contains(true)
        if hasUnknown && options.unknownTasks != .uniform {
            throw PolyError("router: unknown task (id \(TaskTable.unknownID)) needs the uniform fallback (RoutingOptions.unknownTasks = .uniform)")
        }
        let rows = hasUnknown ? rowTasks.map { Swift.max($0, 0) } : rowTasks
        let u = ctx.isTraining ? (noise ?? Tensor.uniform([g, s, k], using: &ctx.rng)) : nil
        if !hasUnknown && options.keepsPEFTPipeline(training: ctx.isTraining) {
            return try RoutingWeights.compute(table: try logitTable(ctx), rows: rows, splits: s, skills: k, uniform: u,
                                              temperature: options.temperature)
        }
        return try composedWeights(rows: rows, unknown: hasUnknown ? unknown : nil, uniform: u, ctx)
    }

    /// `weights` as separate ops, with every option: the general path, and the oracle of `RoutingWeights`.
    func composedWeights(rows: [Int], unknown: [Bool]?, uniform u: Tensor?, _ ctx: Context) throws -> Variable {
        let g = rows.count, s = nSplits, k = nSkills
        let logits = try logitTable(ctx).indexSelect(axis: 0, rows).reshaped([g, s, k])        // [G, S, K]
        var p: Variable
        if let u {
            p = try RelaxedBernoulli.sample(logits: logits, uniform: u, temperature: options.temperature)
        } else {
            p = logits.sigmoid()
        }
        if options.straightThrough { p = StraightThrough.round(p) }
        if ctx.isTraining && options.dropout > 0 { p = try p.dropout(p: options.dropout, using: &ctx.rng) }
        if options.sharedSkill {
            let keep = Tensor((0..<k).map { $0 == k - 1 ? 0 : 1 }, shape: [1, 1, k])                // [1, 1, K]
            p = try (try p * Variable(keep)) + Variable(1 - keep)
        }
        var w = try p / (try p.sum(axes: [2], keepDims: true) + 1e-12)                             // [G, S, K]
        if let unknown {
            let known = Tensor(unknown.map { $0 ? 0 : 1 }, shape: [g, 1, 1])                       // [G, 1, 1]
            let uniform = try (1 - known).expanded(to: [g, s, k]) * (1 / Float(k))                  // [G, S, K]
            w = try (try w * Variable(known)) + Variable(uniform.contiguous())
        }
        return w
    }

    /// Evaluation-mode weights for every task: `[n_tasks, S, K]` (the routing readout).
    public func allocation() throws -> Tensor {
        try weights(rowTasks: Array(0..<nTasks), Context.inference()).value
    }

    /// Evaluation-mode routing probabilities `sigmoid(L)` for every task: `[n_tasks, S, K]` (before normalisation).
    public func probabilities() throws -> Tensor {
        try logitTable(Context.inference()).value.reshaped([nTasks, nSplits, nSkills]).sigmoid()
    }
}

/// Task routing (`Router`): the context's task ids, one per sample, pick rows of the logit table.
///
/// ```
/// evaluation:  a group per distinct task, in order of first appearance      G = distinct tasks
/// training:    a group per sample (each draws its own uniforms [G, S, K])   G = N
/// every token of sample n is in sample n's group
/// ```
/// Task ids are checked (`TaskBatch`: one per sample, each in `0..<n_tasks`, or `TaskTable.unknownID` with the uniform
/// fallback); the training uniforms are `ctx.uniformDraws([G, S, K], for: path)`.
extension PolyRouter: Router {
    public func route(_ x: Variable, _ ctx: Context, layer path: String) throws -> Routing {
        let (n, t) = try x.routedRows(layer: path)
        let tasks = try TaskBatch(ctx.taskIDs, batch: n, nTasks: nTasks, layer: path,
                                  allowsUnknown: options.unknownTasks == .uniform)
        let (groupTasks, groupOfSample) = ctx.isTraining ? (tasks.ids, Array(0..<n)) : (tasks.distinct, tasks.groupOfSample)
        let noise = ctx.isTraining ? try ctx.uniformDraws([groupTasks.count, nSplits, nSkills], for: path) : nil
        let w = try weights(rowTasks: groupTasks, ctx, noise: noise)                                       // [G, S, K]
        return try Routing(weights: w, sampleGroups: groupOfSample, tokens: t)
    }
}
