/// What a Poly layer saves: PEFT's three tensors, with the router rows of tasks added after training
/// (`NewTasks.swift`) folded into `module_logits`.
extension PolyLinear {
    /// The file holds `module_logits` with pending task rows folded in, and no `new_module_logits`.
    public func savedTensors() throws -> [(name: String, tensor: Tensor)] {
        try adapterParameters().compactMap { name, p in
            guard let extra = router.newLogits else { return (name, p.value) }
            if p === extra { return nil }
            if p === router.moduleLogits { return (name, try Tensor.concatenate([p.value, extra.value], axis: 0)) }
            return (name, p.value)
        }
    }

    /// Loading replaces `module_logits` whole, so rows of added tasks must be committed (or dropped) first.
    public func loadSavedTensors(_ tensors: [String: Tensor]) throws {
        if router.newLogits != nil {
            throw PolyError("\(path): tasks added with addTasks are pending; commitNewTasks() before loading an adapter file")
        }
        for (name, p) in adapterParameters() { if let t = tensors[name] { p.value = t.contiguous() } }
    }
}
