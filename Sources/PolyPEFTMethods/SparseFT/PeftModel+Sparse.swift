import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

extension PeftModel {
    /// The sparse fine-tuning layers, in module order.
    public var sparseLayers: [SparseLinear] { adapters.compactMap { $0.layer as? SparseLinear } }

    /// Chooses the trained entries again by empirical Fisher information (FishMask): the budget goes to the largest
    /// `sum_b (dL_b / dW)^2` over `batches` losses of the base model (`loss(b)`, b = 0 ..< batches), over all targeted
    /// weights together. The values restart at 0 and `budget_pattern` is rewritten; call it before making the
    /// optimizer (the trained tensor's size changes). On an error the previous entries stay.
    public func selectSparseMask(fisherBatches batches: Int, loss: (Int) throws -> Variable) throws {
        guard var sparse = config as? SparseConfig else {
            throw ConfigError("selectSparseMask: the model's method is \(type(of: config).peftType), not sparse fine-tuning")
        }
        guard batches >= 1 else { throw ConfigError("selectSparseMask: needs at least 1 batch, got \(batches)") }
        let layers = sparseLayers
        let kept = layers.map(\.entries)
        let flags = layers.map(\.linear.weight.requiresGrad)
        defer {
            for (l, f) in zip(layers, flags) { l.linear.weight.requiresGrad = f }
            zeroGrad()
        }
        do {
            var scores = layers.map { Tensor.zeros($0.linear.weight.value.shape) }
            for l in layers {
                try l.setEntries([])                               // the base alone
                l.linear.weight.requiresGrad = true
            }
            for b in 0..<batches {
                for l in layers { l.linear.weight.zeroGrad() }
                let value = try loss(b)
                guard value.value.count == 1, value.value.scalars[0].isFinite else {
                    throw ConfigError("selectSparseMask: batch \(b)'s loss is not a finite scalar")
                }
                try value.backward()
                for (i, l) in layers.enumerated() {
                    if let g = l.linear.weight.grad { scores[i] = try scores[i] + g.squared() }
                }
            }
            let total = layers.reduce(0) { $0 + $1.linear.weight.count }
            try SparseSelection.assign(scores: scores, to: layers, count: sparse.entries(of: total))
        } catch {
            for (l, e) in zip(layers, kept) { try? l.setEntries(e) }
            throw error
        }
        sparse.budgetPattern = SparseConfig.budgetPattern(of: layers)
        sparse.selection = .fisher
        config = sparse
    }
}
