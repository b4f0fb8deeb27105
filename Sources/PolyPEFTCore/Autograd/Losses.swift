/// How a loss combines per-element (or per-sample) terms.
public enum Reduction: String, Sendable, Codable { case mean, sum }

/// Loss functions, each a single primitive with a fused backward.
public enum Loss {
    /// Mean squared error: `l = reduce((pred - target)^2)`;  `dpred = 2 (pred - target) / n` for the mean.
    public static func mse(_ prediction: Variable, _ target: Tensor, reduction: Reduction = .mean) throws -> Variable {
        guard prediction.shape == target.shape else {
            throw TensorError("mse_loss", "prediction \(fmt(prediction.shape)) and target \(fmt(target.shape)) differ")
        }
        let diff = try prediction.value - target
        let n = Float(Swift.max(diff.count, 1))
        let scale: Float = reduction == .mean ? 1 / n : 1
        let value = Tensor(scalar: diff.squared().sumAll() * scale)
        return Variable.record(value, [prediction]) { g, _ in [diff * (2 * scale * g.scalarValue)] }
    }

    /// Cross-entropy over class logits with an ignore index (for padded sequence positions):
    ///
    /// ```
    /// logits: [N, C] (or [..., C], flattened), targets: N integers
    /// l_i = logsumexp(logits_i) - logits_i[t_i]          for t_i != ignoreIndex
    /// mean: sum_i l_i / #(non-ignored);   dlogits_i = (softmax(logits_i) - onehot(t_i)) * scale
    /// ```
    /// An out-of-range target (other than `ignoreIndex`) throws. With every target ignored the mean is 0 (PyTorch
    /// returns NaN there; 0 keeps training loops stable).
    public static func crossEntropy(_ logits: Variable, targets: [Int], ignoreIndex: Int = -100,
                                    reduction: Reduction = .mean) throws -> Variable {
        guard let c = logits.shape.last, logits.value.rank >= 1 else {
            throw TensorError("cross_entropy", "logits must have a class axis, got \(fmt(logits.shape))")
        }
        let n = logits.value.count / Swift.max(c, 1)
        guard targets.count == n else {
            throw TensorError("cross_entropy", "\(targets.count) targets for logits \(fmt(logits.shape)) (\(n) rows)")
        }
        for (i, t) in targets.enumerated() where t != ignoreIndex && (t < 0 || t >= c) {
            throw TensorError("cross_entropy", "target \(t) at position \(i) out of range 0..<\(c)")
        }
        // Per row only the log-sum-exp is kept (no [N, C] log-softmax copy): the backward recomputes exp(x - lse).
        let x = logits.value.contiguous()                                            // x: [N, C], copied at most once
        var lse = Tensor.uninitializedScalars(n)                                     // lse: [N]
        var total: Float = 0
        var counted = 0
        if n > 0 { Tensor.withBuffers(x, writing: &lse) { px, pl in
            let (px, pl) = (px.baseAddress!, pl.baseAddress!)
            Parallel.forEachPart(count: n, work: n * c, threshold: Parallel.elementwiseThreshold) { rows in
                for i in rows { pl[i] = Tensor.logSumExp(px + i * c, c) }
            }
            for (i, t) in targets.enumerated() where t != ignoreIndex {
                total += pl[i] - px[i * c + t]
                counted += 1
            }
        } }
        let scale: Float = reduction == .mean ? (counted == 0 ? 0 : 1 / Float(counted)) : 1
        let shape = logits.shape
        let rowLSE = lse
        return Variable.record(Tensor(scalar: total * scale), [logits]) { g, _ in
            // d[i] = (softmax(x_i) - onehot(t_i)) * s, zero for ignored rows; rows split among the threads.
            var d = Tensor.uninitializedScalars(n * c)                                   // d: [N, C]
            let s = scale * g.scalarValue
            if n > 0 { Tensor.withBuffers(x, writing: &d) { px, db in
                let (px, dp) = (px.baseAddress!, db.baseAddress!)
                Parallel.forEachPart(count: n, work: n * c, threshold: Parallel.elementwiseThreshold) { rows in
                    for i in rows {                                                 // per row: one target, one lse
                        let row = dp + i * c, t = targets[i]
                        guard t != ignoreIndex else { row.update(repeating: 0, count: c); continue }
                        let xi = px + i * c, l = rowLSE[i]
                        for j in 0..<c { row[j] = _expf(xi[j] - l) * s }
                        row[t] -= s
                    }
                }
            } }
            return [Tensor(d, shape: shape)]
        }
    }
}
