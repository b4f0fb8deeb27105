/// `PolyLinear`'s forward: the adapter protocol's `base(x) + delta(x)`, with one shortcut.
///
/// ```
/// merged task t, evaluation, every sample of task t, nothing recorded:  y = base(x)   (W already holds W + dW_t)
/// otherwise:                                                             y = base(x) + delta(x)
/// ```
/// The shortcut skips the zero update and the addition, so a merged task costs what the base layer costs. Every
/// other case (including the errors of a merged layer used for another task or in training) goes through `delta`.
extension PolyLinear {
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        let base = try baseLayer.forward(x, ctx)
        guard ctx.adaptersEnabled else { return base }
        if let m = merged, !ctx.isTraining, ctx.recorder == nil, let ids = ctx.taskIDs, ids.count == x.shape.first,
           ids.allSatisfy({ $0 == m.task }) {
            return base
        }
        // The protocol's default (AdapterLayer.forward), which this method replaces for PolyLinear.
        let y = try base + (try delta(x, ctx))
        if let r = ctx.recorder {
            r.record("layer.\(path).input", x.value)
            r.record("layer.\(path).base_output", base.value)
            r.record("layer.\(path).output", y.value)
        }
        return y
    }
}
