import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A Poly layer's shortcut in the adapter protocol's forward:
///
/// ```
/// merged task t, evaluation, every sample of task t, nothing recorded:  y = base(x)   (W already holds W + dW_t)
/// otherwise:                                                             y = base(x) + delta(x)
/// ```
/// The shortcut skips the zero update and the addition, so a merged task costs what the base layer costs. Every
/// other case (including the errors of a merged layer used for another task or in training) goes through `delta`.
extension RoutedPolyLinear {
    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool {
        guard let m = merged, !ctx.isTraining, ctx.recorder == nil, let ids = ctx.taskIDs, ids.count == x.shape.first else {
            return false
        }
        return ids.allSatisfy { $0 == m.task }
    }
}
