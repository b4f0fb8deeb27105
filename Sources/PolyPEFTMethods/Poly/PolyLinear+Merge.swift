import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Merging one task's routed update into the frozen base weight, for task-specific serving at base-layer cost:
///
/// ```
/// merge(task t):  W' = W + dW_t,   dW_t = scaling * B A   of `taskLoRA(task: t)`   [out, in]
/// unmerge():      W  = W' - dW_t   (the same stored dW_t, so the round trip is exact up to one rounding)
/// ```
/// While merged, a forward for task t adds nothing (the base already holds the update); a forward for any other task,
/// any training forward, or a forward with adapters disabled (`AdapterLayer.mergedUpdate`) throws instead of silently
/// computing a wrong result. Only task-routed layers (`PolyLinear`) merge; the merge state and `unmerge` are every
/// routed layer's, so that the adapter protocol sees them whatever the router.
extension RoutedPolyLinear {
    /// The task whose update is in the base weight, if any.
    public var mergedTask: Int? { merged?.task }

    public var mergedUpdate: String? { merged.map { "task \($0.task)'s update" } }

    /// Removes a merged update again (nothing to do when none is merged).
    public func unmerge() throws {
        guard let m = merged else { return }
        try baseLayer.weight.value.add(-m.delta)
        merged = nil
    }

    /// The update while `task` is merged: zero when every sample is that task's, an error for anything else. The
    /// router has checked the task ids already.
    func mergedDelta(_ x: Variable, task: Int, _ ctx: Context) throws -> Variable {
        guard !ctx.isTraining else {
            throw PolyError("\(path): task \(task) is merged into the base weight; unmerge before training")
        }
        if let other = (ctx.taskIDs ?? []).first(where: { $0 != task }) {
            throw PolyError("\(path): task \(task) is merged into the base weight; a forward for task \(other) needs unmerge() first")
        }
        return Variable(Tensor.zeros(Array(x.shape.dropLast()) + [baseLayer.outFeatures]))
    }
}

extension PolyLinear {
    /// Adds task `task`'s update into the base weight.
    public func merge(task: Int) throws {
        if let m = merged { throw PolyError("\(path): task \(m.task) is already merged; unmerge it first") }
        let d = try taskLoRA(task: task).deltaWeight()                                 // [out, in]
        try baseLayer.weight.value.add(d)
        merged = (task, d)
    }
}

extension PeftModel {
    /// The task merged into every Poly layer, if any.
    public var mergedTask: Int? { polyLayers.first?.layer.mergedTask }

    /// Merges task `task` into every Poly layer (all or none: on failure the layers already merged are restored).
    public func merge(task: Int) throws {
        var done: [PolyLinear] = []
        do {
            for (_, layer) in polyLayers {
                try layer.merge(task: task)
                done.append(layer)
            }
        } catch {
            for layer in done { try? layer.unmerge() }
            throw error
        }
    }

    /// Merges the task called `name` in `tasks`.
    public func merge(task name: String, in tasks: TaskTable) throws { try merge(task: try tasks.id(of: name)) }
}
