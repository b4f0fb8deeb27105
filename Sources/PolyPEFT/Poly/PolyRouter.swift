/// Poly's router: a learned logit per (task, split, skill), turned into per-split mixing weights over skills.
///
/// ```
/// module_logits: [n_tasks, S*K]          (element [t, s*K + k])
/// L = module_logits[task] viewed [S, K]
/// eval:  P = sigmoid(L)
/// train: P = RelaxedBernoulli(T, L).rsample()   (one draw per sample, split and skill)
/// w[s, k] = P[s, k] / (sum_k' P[s, k'] + 1e-12)
/// ```
public final class PolyRouter: Module {
    public let nTasks: Int
    public let nSkills: Int
    public let nSplits: Int
    public let moduleLogits: Parameter     // [n_tasks, S*K]
    /// Relaxed-Bernoulli temperature in training (PEFT: 1).
    public var temperature: Float = 1

    /// PEFT's initialisation: logits ~ U(-1e-3, 1e-3).
    public init(nTasks: Int, nSkills: Int, nSplits: Int, using rng: inout some RandomNumberGenerator) {
        self.nTasks = nTasks
        self.nSkills = nSkills
        self.nSplits = nSplits
        moduleLogits = Parameter(Tensor.uniform([nTasks, nSplits * nSkills], low: -1e-3, high: 1e-3, using: &rng))
        super.init()
        addParameter("module_logits", moduleLogits)
    }

    /// Mixing weights `[G, S, K]` for `rowTasks` (one task id per group of rows).
    ///
    /// In training, `noise` (`[G, S, K]` uniforms) is used when given, else drawn from the context's generator.
    public func weights(rowTasks: [Int], _ ctx: Context, noise: Tensor? = nil) throws -> Variable {
        let g = rowTasks.count
        let logits = try ctx[moduleLogits].indexSelect(axis: 0, rowTasks).reshaped([g, nSplits, nSkills])   // [G, S, K]
        let p: Variable
        if ctx.isTraining {
            let u = noise ?? Tensor.uniform([g, nSplits, nSkills], using: &ctx.rng)
            p = try RelaxedBernoulli.sample(logits: logits, uniform: u, temperature: temperature)
        } else {
            p = logits.sigmoid()
        }
        return try p / (try p.sum(axes: [2], keepDims: true) + 1e-12)
    }

    /// Evaluation-mode weights for every task: `[n_tasks, S, K]` (the routing readout).
    public func allocation() throws -> Tensor {
        try weights(rowTasks: Array(0..<nTasks), Context.inference()).value
    }
}
