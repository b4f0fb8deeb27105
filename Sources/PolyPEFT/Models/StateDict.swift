/// Loading weights by PyTorch `state_dict` name.
extension Module {
    /// Copies `tensors` into the parameters of the same dotted name.
    ///
    /// A parameter listed under several names (tied embeddings: `shared.weight`, `encoder.embed_tokens.weight`,
    /// `decoder.embed_tokens.weight`, `lm_head.weight`) is loaded when any of its names is present; if several are,
    /// they must hold equal values. Everything wrong is reported at once in one `ModelError`: missing parameters,
    /// unexpected keys (unless `allowUnexpected`), shape mismatches with both shapes. Nothing is modified on error.
    public func loadStateDict(_ tensors: [String: Tensor], allowUnexpected: Bool = false) throws {
        let named = namedParameters()
        var byName: [String: Parameter] = [:]
        var groups: [ObjectIdentifier: [String]] = [:]
        var order: [ObjectIdentifier] = []
        for (name, p) in named {
            byName[name] = p
            let id = ObjectIdentifier(p)
            if groups[id] == nil { order.append(id) }
            groups[id, default: []].append(name)
        }
        var problems: [String] = []
        var updates: [(Parameter, Tensor)] = []
        let unexpected = tensors.keys.filter { byName[$0] == nil }.sorted()
        if !unexpected.isEmpty && !allowUnexpected { problems.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
        var missing: [String] = []
        for id in order {
            let names = groups[id]!
            let p = byName[names[0]]!
            let present = names.filter { tensors[$0] != nil }
            guard let first = present.first, let t = tensors[first] else { missing.append(names[0]); continue }
            var ok = true
            for n in present where tensors[n]!.shape != p.value.shape {
                problems.append("shape mismatch for \(n): checkpoint \(fmt(tensors[n]!.shape)), model \(fmt(p.value.shape))")
                ok = false
            }
            guard ok else { continue }
            for n in present.dropFirst() where tensors[n]!.scalars != t.scalars {
                problems.append("tied parameter names \(first) and \(n) hold different values")
                ok = false
            }
            if ok { updates.append((p, t.contiguous())) }
        }
        if !missing.isEmpty { problems.insert("missing keys: \(missing.joined(separator: ", "))", at: 0) }
        guard problems.isEmpty else { throw ModelError("load_state_dict: " + problems.joined(separator: "; ")) }
        for (p, t) in updates { p.value = t }
    }

    /// Every parameter value by dotted name (tied parameters under each of their names), PyTorch's `state_dict()`.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (n, p) in namedParameters() { out[n] = p.value }
        return out
    }
}
