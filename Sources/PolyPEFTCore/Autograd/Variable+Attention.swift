/// Multi-head attention as one primitive with a fused backward.
extension Variable {
    /// Scaled dot-product attention with an additive, trainable bias and an additive constant mask:
    ///
    /// ```
    /// q: [B, H, Tq, D], k: [B, H, Tk, D], v: [B, H, Tk, Dv]
    /// bias, mask: broadcastable to [B, H, Tq, Tk]      (mask entries 0 or very negative, -inf allowed)
    /// S = q k^T * scale + bias + mask                   // [B, H, Tq, Tk]
    /// P = softmax(S, over Tk)                           // a row whose entries are all -inf gives P = 0
    /// O = (P * M) v                                     // [B, H, Tq, Dv]; M: optional dropout mask (0 or 1/(1-p))
    ///
    /// dV = (P * M)^T g
    /// dP = (g v^T) * M
    /// dS = P * (dP - rowsum(P * dP))                    // rowsum(P * dP) = rowsum(g * O)
    /// dq = dS k * scale,  dk = dS^T q * scale,  dbias = dS summed to bias's shape
    /// ```
    /// T5 uses `scale = 1` (no 1/sqrt(D)), BERT `1/sqrt(D)`. Without a trainable bias the scores are computed one
    /// (sample, head) block at a time and never stored (`BlockedAttention`); with one (T5's relative positions,
    /// whose gradient sums over the batch) they are materialised as `[B, H, Tq, Tk]`.
    public static func attention(query q: Variable, key k: Variable, value v: Variable, bias: Variable? = nil,
                                 mask: Tensor? = nil, scale: Float = 1,
                                 probabilityDropout: Tensor? = nil) throws -> Variable {
        let (qs, ks, vs) = (q.shape, k.shape, v.shape)
        guard qs.count == 4, ks.count == 4, vs.count == 4 else {
            throw TensorError("attention", "q, k, v must be [B, H, T, D], got \(fmt(qs)), \(fmt(ks)), \(fmt(vs))")
        }
        guard ks[0] == qs[0], ks[1] == qs[1], ks[3] == qs[3], vs[0] == qs[0], vs[1] == qs[1], vs[2] == ks[2] else {
            throw TensorError("attention", "q \(fmt(qs)), k \(fmt(ks)) and v \(fmt(vs)) do not fit")
        }
        let full = [qs[0], qs[1], qs[2], ks[2]]
        for (name, s) in [("bias", bias?.shape), ("mask", mask?.shape)] {
            guard let s else { continue }
            guard s.count <= 4, (try? Tensor.broadcastShapes(s, full, "attention")) == full else {
                throw TensorError("attention", "\(name) \(fmt(s)) does not broadcast to the scores \(fmt(full))")
            }
        }
        let (qv, kv, vv) = (q.value, k.value, v.value)
        if let d = probabilityDropout, d.shape != full {
            throw TensorError("attention", "dropout mask \(fmt(d.shape)) is not the scores' shape \(fmt(full))")
        }
        if bias == nil {
            // No trainable bias (BERT): one (sample, head) block of scores at a time (Variable+BlockedAttention.swift).
            let out = BlockedAttention.forward(q: qv, k: kv, v: vv, mask: mask, scale: scale, dropout: probabilityDropout)
            return record(out, [q, k, v]) { g, needs in
                let (dq, dk, dv) = BlockedAttention.backward(g, q: qv, k: kv, v: vv, mask: mask, scale: scale,
                                                             dropout: probabilityDropout, needs: (needs[0], needs[1], needs[2]))
                return [dq, dk, dv]
            }
        }
        var p = try qv.matmul(try kv.transposed())                    // p: [B, H, Tq, Tk], scores then probabilities
        attentionSoftmaxRows(&p, scale: scale, bias: try bias?.value.expanded(to: full),
                                 mask: try mask?.expanded(to: full))
        let dropped = try probabilityDropout.map { try p * $0 } ?? p      // dropped: [B, H, Tq, Tk]
        let out = try dropped.matmul(vv)                               // out: [B, H, Tq, Dv]
        let probs = p
        let inputs = [q, k, v] + (bias.map { [$0] } ?? [])
        let biasShape = bias?.shape
        return record(out, inputs) { g, needs in
            let dv = needs[2] ? try dropped.transposed().matmul(g) : nil          // [B, H, Tk, Dv]
            let needScores = needs[0] || needs[1] || (needs.count > 3 && needs[3])
            guard needScores else { return [nil, nil, dv] + (biasShape == nil ? [] : [nil]) }
            var ds = try g.matmul(try vv.transposed())                            // dP, then dS: [B, H, Tq, Tk]
            if let d = probabilityDropout { ds = try ds * d }
            attentionSoftmaxBackwardRows(&ds, probs: probs)
            let dq = needs[0] ? try ds.matmul(kv) * scale : nil                   // [B, H, Tq, D]
            let dk = needs[1] ? try ds.transposed().matmul(qv) * scale : nil      // [B, H, Tk, D]
            var result: [Tensor?] = [dq, dk, dv]
            if let biasShape { result.append(needs[3] ? try ds.reduced(toShape: biasShape) : nil) }
            return result
        }
    }
}

/// In place over rows of `s` ([B, H, Tq, Tk], contiguous): `s = softmax(s * scale + bias + mask)`; bias and mask are
/// broadcast views of the full shape. Rows whose maximum is -inf become zeros.
func attentionSoftmaxRows(_ s: inout Tensor, scale: Float, bias: Tensor?, mask: Tensor?) {
    let shape = s.shape
    let (h, tq, tk) = (shape[1], shape[2], shape[3])
    let rows = shape[0] * h * tq
    let extra = [bias, mask].compactMap { $0 }
    // Each additive term as (contiguous storage copy base, strides); views keep their storage, read by offset.
    let terms = extra.map { ($0.storage, $0.strides, $0.offset) }
    s.withUnsafeMutableElements { buf in
        let base = UncheckedSendable(buf.baseAddress!)
        Parallel.forEachPart(count: rows, work: rows * tk, threshold: Parallel.elementwiseThreshold) { part in
            for r in part {
                let row = base.value + r * tk
                let (b, hi, i) = (r / (h * tq), (r / tq) % h, r % tq)
                if scale != 1 { rowScale8(row, tk, by: scale) }
                for (storage, st, off) in terms {
                    storage.withUnsafeBufferPointer { t in
                        let start = off + b * st[0] + hi * st[1] + i * st[2]
                        addScoreTerm(row, tk, t.baseAddress! + start, step: st[3])
                    }
                }
                softmaxScoreRow(row, tk)
            }
        }
    }
}

/// `row[j] += t[j * step]` over a row of scores (a mask's or a bias's row).
@inline(__always)
func addScoreTerm(_ row: UnsafeMutablePointer<Float>, _ n: Int, _ t: UnsafePointer<Float>, step: Int) {
    var j = 0
    if step == 1 { while j + 8 <= n { store8(load8(row + j) + load8(t + j), row + j); j += 8 } }
    while j < n { row[j] += t[j * step]; j += 1 }
}

/// A row of scores in place to its probabilities: `softmax(row)`, or zeros when every score is -inf (a query that
/// sees no key).
@inline(__always)
func softmaxScoreRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
    let m = rowMax8(row, n)
    if m == -.infinity {
        row.update(repeating: 0, count: n)
        return
    }
    rowScale8(row, n, by: 1 / rowExpShifted8(row, n, shift: m))
}

/// One row of `d = p * (d - rowsum(p * d))`, turning dP into dS (both attention paths).
@inline(__always)
func softmaxBackwardRow(_ row: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, _ n: Int) {
    let s = dot(p, row, count: n), sv = SIMD8<Float>(repeating: s)
    var j = 0
    while j + 8 <= n { store8(load8(p + j) * (load8(row + j) - sv), row + j); j += 8 }
    while j < n { row[j] = p[j] * (row[j] - s); j += 1 }
}

/// In place over rows: `d = p * (d - rowsum(p * d))`, turning dP into dS.
func attentionSoftmaxBackwardRows(_ d: inout Tensor, probs: Tensor) {
    let tk = d.shape[3]
    let rows = d.count / Swift.max(tk, 1)
    probs.withContiguousBuffer { pb in
        let p = UncheckedSendable(pb.baseAddress!)
        d.withUnsafeMutableElements { buf in
            let base = UncheckedSendable(buf.baseAddress!)
            Parallel.forEachPart(count: rows, work: rows * tk, threshold: Parallel.elementwiseThreshold) { part in
                for r in part {
                    softmaxBackwardRow(base.value + r * tk, p.value + r * tk, tk)
                }
            }
        }
    }
}

/// The unfused reference (matmul, add, softmax, matmul) used as the test oracle.
extension Variable {
    public static func attentionReference(query q: Variable, key k: Variable, value v: Variable, bias: Variable? = nil,
                                          mask: Tensor? = nil, scale: Float = 1) throws -> Variable {
        var s = try q.matmul(try k.transposed()) * scale
        if let bias { s = try s + bias }
        if let mask { s = try s + Variable(mask) }
        return try s.softmax(axis: -1).matmul(v)
    }
}
