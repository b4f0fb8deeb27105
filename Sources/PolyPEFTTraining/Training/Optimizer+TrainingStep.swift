import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

extension Optimizer {
    /// One optimisation step: the body of every training loop in the library and its tools (`Trainer`, few-shot
    /// adaptation, `polyctl bench`):
    ///
    /// ```
    /// zero the groups' gradients
    /// y = forward(ctx)            ctx: training mode, taskIDs, drawing from rng (dropout, router sampling)
    /// backward from seed          (nil: y is a scalar loss)
    /// a scalar y or any gradient not finite: throw DivergenceError (nothing updated, rng unchanged)
    /// clip the global norm of the groups' gradients to clipNorm (0: no clipping)
    /// step at lrScale;  rng = ctx.rng
    /// ```
    /// Returns `y` (the loss, for a scalar). The finiteness check is one more pass over the gradients (adapter
    /// gradients: small beside the forward and backward).
    @discardableResult
    public func trainingStep(taskIDs: [Int]? = nil, rng: inout Xoshiro256, lrScale: Float = 1, clipNorm: Float = 0,
                             seed: Tensor? = nil, _ forward: (Context) throws -> Variable) throws -> Variable {
        zeroGrad()
        let ctx = Context(mode: .train, taskIDs: taskIDs, rng: rng)
        let y = try forward(ctx)
        try y.backward(seed: seed)
        if y.value.count == 1, !y.value.scalarValue.isFinite {
            throw DivergenceError("the loss is \(y.value.scalarValue)")
        }
        try checkGradientsFinite()
        if clipNorm > 0 { clipGradNorm(groups.flatMap { $0.parameters.map(\.parameter) }.uniqueObjects { $0 }, maxNorm: clipNorm) }
        step(lrScale: lrScale)
        rng = ctx.rng
        return y
    }

    /// Throws a `DivergenceError` naming the first parameter (`group/name`) whose gradient holds a NaN or infinity.
    func checkGradientsFinite() throws {
        for g in groups {
            for (name, p) in g.parameters {
                guard let note = p.grad?.nonFiniteNote() else { continue }
                throw DivergenceError("the gradient of '\(g.name)/\(name)' \(note)")
            }
        }
    }
}
