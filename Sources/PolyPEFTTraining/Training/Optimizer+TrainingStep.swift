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
    /// clip the global norm of the groups' gradients to clipNorm (0: no clipping)
    /// step at lrScale;  rng = ctx.rng
    /// ```
    /// Returns `y` (the loss, for a scalar).
    @discardableResult
    public func trainingStep(taskIDs: [Int]? = nil, rng: inout Xoshiro256, lrScale: Float = 1, clipNorm: Float = 0,
                             seed: Tensor? = nil, _ forward: (Context) throws -> Variable) throws -> Variable {
        zeroGrad()
        let ctx = Context(mode: .train, taskIDs: taskIDs, rng: rng)
        let y = try forward(ctx)
        try y.backward(seed: seed)
        if clipNorm > 0 { clipGradNorm(groups.flatMap { $0.parameters.map(\.parameter) }.uniqueObjects { $0 }, maxNorm: clipNorm) }
        step(lrScale: lrScale)
        rng = ctx.rng
        return y
    }
}
