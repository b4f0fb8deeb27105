import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A Poly layer's shortcut in the adapter protocol's forward:
///
/// ```
/// merged task t, evaluation, every sample of task t, nothing recorded:  y = base(x)   (W already holds W + dW_t)
/// otherwise:                                                             y = base(x) + delta(x)
/// ```
/// The shortcut skips the zero update and the addition, so a merged task costs what the base layer costs, whether
/// the input is [B, in], [B, T, in] or flattened to [B*T, in] (as a transformer's projections see it): with every
/// sample of task t, every row is. Every other case (including the errors of a merged layer used for another task or
/// in training, and rows that do not divide among the samples) goes through `delta`.
extension RoutedPolyLinear {
    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool {
        guard let m = merged, !ctx.isTraining, ctx.recorder == nil, let ids = ctx.taskIDs, !ids.isEmpty else { return false }
        let rows = x.shape.dropLast().reduce(1, *)
        return rows % ids.count == 0 && ids.allSatisfy { $0 == m.task }
    }
}
