/// Softmax and log-softmax along one axis, computed row by row on a contiguous copy with the axis last, 8 lanes at a
/// time (`exp8`); `softmaxReference` is the scalar libm oracle.
extension Tensor {
    /// Applies `kernel(row, n)` to every length-`n` row along `axis`, in place on a copy, and restores the layout.
    /// From `Parallel.elementwiseThreshold` elements the rows are split among the threads (rows are independent).
    func alongAxis(_ axis: Int, _ op: String, _ kernel: (UnsafeMutablePointer<Float>, Int) -> Void) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, op)
        var order = Array(0..<rank)
        order.remove(at: a)
        order.append(a)
        var moved = try permuted(order).contiguous()
        let n = shape[a]
        if n > 0 {
            moved.withUnsafeMutableElements { buf in
                let base = buf.baseAddress!
                Parallel.forEachPart(count: buf.count / n, work: buf.count, threshold: Parallel.elementwiseThreshold) { rows in
                    for r in rows { kernel(base + r * n, n) }
                }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return try moved.permuted(inverse)
    }

    /// The largest finite-or-not element of a row, 0 when it is not finite (so an all -inf row stays NaN-free).
    @inline(__always)
    static func stableMax(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = rowMax8(row, n)
        return m.isFinite ? m : 0
    }

    /// `softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x)` along `axis`.
    public func softmax(axis: Int = -1) throws -> Tensor {
        try alongAxis(axis, "softmax") { row, n in
            let s = rowExpShifted8(row, n, shift: Tensor.stableMax(row, n))
            rowScale8(row, n, by: 1 / s)
        }
    }

    /// `softmax` with libm's scalar `expf`, one element at a time (the oracle).
    package func softmaxReference(axis: Int = -1) throws -> Tensor {
        try alongAxis(axis, "softmax") { row, n in
            var m = -Float.infinity
            for j in 0..<n { m = Swift.max(m, row[j]) }
            if !m.isFinite { m = 0 }
            var s: Float = 0
            for j in 0..<n { row[j] = _expf(row[j] - m); s += row[j] }
            for j in 0..<n { row[j] /= s }
        }
    }

    /// `log_softmax(x)_i = x_i - logsumexp(x)` along `axis`.
    public func logSoftmax(axis: Int = -1) throws -> Tensor {
        try alongAxis(axis, "log_softmax") { row, n in
            let lse = Tensor.logSumExp(row, n)
            for j in 0..<n { row[j] -= lse }
        }
    }

    /// `log sum_j exp(row[j])` of one row, shifted by its stable maximum (log-softmax, cross-entropy).
    @inline(__always)
    static func logSumExp(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = stableMax(row, n)
        return m + _logf(rowSumExpShifted8(row, n, shift: m))
    }
}
