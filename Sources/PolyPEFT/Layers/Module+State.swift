/// Reading and writing parameter values by their dotted names (PyTorch's `state_dict` / `load_state_dict`).
extension Module {
    /// Every parameter's value by dotted name.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, p) in namedParameters() { out[name] = p.value }
        return out
    }

    /// Sets parameters from `tensors`. With `strict`, every parameter must be present and no other key may appear;
    /// `aliases` maps a parameter name to other keys that may hold it (tied weights saved under several names).
    /// Errors name the key and both shapes; nothing is changed unless everything fits.
    public func loadStateDict(_ tensors: [String: Tensor], strict: Bool = true, source: String = "state dict",
                              aliases: [String: [String]] = [:]) throws {
        let params = namedParameters()
        var used = Set<String>()
        var assignments: [(Parameter, Tensor)] = []
        for (name, p) in params {
            let candidates = [name] + (aliases[name] ?? [])
            guard let key = candidates.first(where: { tensors[$0] != nil }) else {
                if strict { throw ModuleError("\(source): missing tensor '\(name)'") }
                continue
            }
            let t = tensors[key]!
            guard t.shape == p.value.shape else {
                throw ModuleError("\(source): tensor '\(key)' has shape \(fmt(t.shape)), the model expects \(fmt(p.value.shape))")
            }
            used.formUnion(candidates.filter { tensors[$0] != nil })
            assignments.append((p, t.contiguous()))
        }
        if strict, let extra = tensors.keys.sorted().first(where: { !used.contains($0) }) {
            throw ModuleError("\(source): unexpected tensor '\(extra)' (the model has no such parameter)")
        }
        for (p, t) in assignments { p.value = t }
    }
}
