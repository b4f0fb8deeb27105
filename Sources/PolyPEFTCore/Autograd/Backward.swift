/// Reverse-mode differentiation over the recorded graph.
extension Variable {
    /// Sends gradients from this value back through the graph into every leaf that requires them.
    ///
    /// `seed` is d(loss)/d(self); it defaults to 1 for a one-element value. Nodes are visited in reverse topological
    /// order, each exactly once; each node's saved state is released as soon as its backward has run, so a graph can
    /// be differentiated once.
    public func backward(seed: Tensor? = nil) throws {
        guard let root = node else { throw AutogradError("backward: the value does not depend on anything that requires gradients") }
        let g0: Tensor
        if let seed {
            guard seed.shape == value.shape else {
                throw AutogradError("backward: seed of shape \(fmt(seed.shape)) for a value of shape \(fmt(value.shape))")
            }
            g0 = seed
        } else {
            guard value.count == 1 else {
                throw AutogradError("backward: value of shape \(fmt(value.shape)) is not a scalar; pass a seed")
            }
            g0 = Tensor.ones(value.shape)
        }
        let order = GradNode.topologicalOrder(from: root)
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): g0]
        for node in order.reversed() {
            guard let g = grads.removeValue(forKey: ObjectIdentifier(node)) else { continue }
            if node.isLeaf {
                if let p = node.parameter {
                    if p.grad == nil { p.grad = g.contiguous() } else { try p.grad!.add(g) }
                } else {
                    if node.leafGrad == nil { node.leafGrad = g.contiguous() } else { try node.leafGrad!.add(g) }
                }
                continue
            }
            guard let fn = node.backwardFn else {
                throw AutogradError("backward: this part of the graph was already differentiated; run the forward again")
            }
            let inputs = node.inputs
            let inputGrads = try fn(g, inputs.map { $0 != nil })
            node.release()
            for (input, gi) in zip(inputs, inputGrads) {
                guard let input, let gi else { continue }
                precondition(gi.shape == input.shape, "backward: gradient \(fmt(gi.shape)) for an input of shape \(fmt(input.shape))")
                let k = ObjectIdentifier(input)
                if var e = grads.removeValue(forKey: k) {
                    try e.add(gi)
                    grads[k] = e
                } else {
                    grads[k] = gi
                }
            }
        }
    }
}

extension GradNode {
    /// Nodes reachable from `root`, each after all of its inputs (iterative DFS, so deep graphs do not overflow the
    /// stack).
    static func topologicalOrder(from root: GradNode) -> [GradNode] {
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradNode, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, next) = stack.popLast() {
            if next < node.inputs.count {
                stack.append((node, next + 1))
                if let child = node.inputs[next], visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(node)
            }
        }
        return order
    }
}
