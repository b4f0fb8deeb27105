import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// What a Poly layer saves: PEFT's three tensors, with the router rows of tasks added after training
/// (`NewTasks.swift`) folded into `module_logits`. On the generic class (not only `PolyLinear`), so that calls through
/// the `Adapter` protocol reach them.
extension RoutedPolyLinear {
    /// The task router's pending rows (`new_module_logits`), if any.
    private var pendingRows: (table: Parameter, extra: Parameter)? {
        guard let poly = router as? PolyRouter, let extra = poly.newLogits else { return nil }
        return (poly.moduleLogits, extra)
    }

    /// The file holds `module_logits` with pending task rows folded in, and no `new_module_logits`.
    public func savedTensors() throws -> [(name: String, tensor: Tensor)] {
        try adapterParameters().compactMap { name, p in
            guard let pending = pendingRows else { return (name, p.value) }
            if p === pending.extra { return nil }
            if p === pending.table { return (name, try Tensor.concatenate([p.value, pending.extra.value], axis: 0)) }
            return (name, p.value)
        }
    }

    /// Loading replaces `module_logits` whole, so rows of added tasks must be committed (or dropped) first.
    public func loadSavedTensors(_ tensors: [String: Tensor]) throws {
        if pendingRows != nil {
            throw PolyError("\(path): tasks added with addTasks are pending; commitNewTasks() before loading an adapter file")
        }
        loadParameters(tensors)
    }
}
