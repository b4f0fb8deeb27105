import PolyPEFTCore
import PolyPEFTIO

/// Reading and writing parameter values by their dotted names (PyTorch's `state_dict` / `load_state_dict`).
extension Module {
    /// Every parameter's value by dotted name (a tied parameter under each of its names).
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, p) in namedParameters() { out[name] = p.value }
        return out
    }

    /// Sets parameters from `tensors` by dotted name.
    ///
    /// A parameter registered under several names (tied embeddings: `shared.weight`, `encoder.embed_tokens.weight`,
    /// `lm_head.weight`, ...) loads from any of them; when several are present they must hold equal values. With
    /// `strict`, every parameter must be present and no other key may appear. Every problem is reported at once in one
    /// `ModuleError` that starts with `source` and names the keys and both shapes; nothing changes unless all fits.
    public func loadStateDict(_ tensors: [String: Tensor], strict: Bool = true, source: String = "state dict") throws {
        var namesOf: [ObjectIdentifier: [String]] = [:]
        var order: [Parameter] = []
        var known = Set<String>()
        for (name, p) in namedParameters() {
            let id = ObjectIdentifier(p)
            if namesOf[id] == nil { order.append(p) }
            namesOf[id, default: []].append(name)
            known.insert(name)
        }
        var problems: [String] = []
        var updates: [(Parameter, Tensor)] = []
        for p in order {
            let names = namesOf[ObjectIdentifier(p)]!
            let present = names.filter { tensors[$0] != nil }
            guard let first = present.first else {
                if strict { problems.append("missing tensor '\(names[0])'") }
                continue
            }
            let mismatched = present.filter { tensors[$0]!.shape != p.value.shape }
            for n in mismatched {
                problems.append("tensor '\(n)' has shape \(fmt(tensors[n]!.shape)), the model expects \(fmt(p.value.shape))")
            }
            guard mismatched.isEmpty else { continue }
            let t = tensors[first]!
            let differing = present.dropFirst().filter { tensors[$0]!.scalars != t.scalars }
            for n in differing { problems.append("tied names '\(first)' and '\(n)' hold different values") }
            if differing.isEmpty { updates.append((p, t.contiguous())) }
        }
        if strict {
            for key in tensors.keys.sorted() where !known.contains(key) {
                problems.append("unexpected tensor '\(key)' (the model has no such parameter)")
            }
        }
        guard problems.isEmpty else { throw ModuleError("\(source): " + problems.joined(separator: "; ")) }
        for (p, t) in updates { p.value = t }
    }
}
