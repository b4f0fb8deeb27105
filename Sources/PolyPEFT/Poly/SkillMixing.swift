/// Parameter mixing of a layer's skills into one pair of low-rank factors per group, as plain loops over constant
/// tensors (evaluation without gradients, and the recorder's `A_mixed` / `B_mixed`).
///
/// ```
/// w: [G, S, K],  A: [S, K, d, r],  B: [S, K, r, e]
/// left[g, s d + i, j]  =         sum_k w[g,s,k] A[s,k,i,j]          left:  [G, S d, r]   (PEFT's A_full of group g)
/// right[g, j, s e + o] = scale * sum_k w[g,s,k] B[s,k,j,o]          right: [G, r, S e]   (B_full, times scale)
/// ```
/// Each `A[s,k]` is one contiguous `d r` block and lands in a contiguous block of `left[g]`; each row `j` of
/// `B[s,k]` is `e` contiguous floats landing at column `s e` of `right[g]`'s row `j`: every output block is a weighted
/// sum of `K` contiguous source blocks (`weightedSum`).
/// `PolyLinear.factors` computes the same with recorded ops (permutes and batched matmuls) and is the oracle.
enum SkillMixing {
    static func mix(w: Tensor, a: Tensor, b: Tensor, scale: Float) -> (left: Tensor, right: Tensor) {
        let (s, k, d, r, e) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3], b.shape[3])
        let g = w.shape[0]
        precondition(w.shape == [g, s, k] && b.shape == [s, k, r, e], "SkillMixing: w \(w.shape), A \(a.shape), B \(b.shape)")
        let wv = w.contiguous(), av = a.contiguous(), bv = b.contiguous()
        var left = Tensor.uninitializedScalars(g * s * d * r)                // [G, S d, r]
        var right = Tensor.uninitializedScalars(g * r * s * e)               // [G, r, S e]
        wv.withContiguousBuffer { pw in av.withContiguousBuffer { pa in bv.withContiguousBuffer { pb in
        left.withUnsafeMutableBufferPointer { pl in right.withUnsafeMutableBufferPointer { pr in
            let (pw, pa, pb) = (pw.baseAddress!, pa.baseAddress!, pb.baseAddress!)
            let out = UncheckedSendable((pl.baseAddress!, pr.baseAddress!))
            // Each (group, split) writes its own blocks: they are shared among threads when the mixing is large
            // (16 tasks of a 1024-wide layer with 8 skills: 2M multiply-adds).
            Parallel.forEachPart(count: g * s, work: g * s * k * r * (d + e), threshold: Gemm.parallelThreshold) { part in
                let (pl, pr) = out.value
                for gs in part {
                    let (gi, si) = gs.quotientAndRemainder(dividingBy: s)
                    let wk = pw + (gi * s + si) * k                                 // w[g, s, :]
                    // left[g, s d ..< (s+1) d, :] = sum_k w[g,s,k] A[s,k]      (A[s,k]: d r floats, k-stride d r)
                    weightedSum(wk, scale: 1, pa + si * k * d * r, stride: d * r, count: k, length: d * r,
                                into: pl + (gi * s + si) * d * r)
                    for j in 0..<r {
                        // right[g, j, s e ..< (s+1) e] = scale sum_k w[g,s,k] B[s,k,j,:]   (k-stride r e)
                        weightedSum(wk, scale: scale, pb + (si * k * r + j) * e, stride: r * e, count: k, length: e,
                                    into: pr + (gi * r + j) * s * e + si * e)
                    }
                }
            }
        } } } } }
        return (Tensor(left, shape: [g, s * d, r]), Tensor(right, shape: [g, r, s * e]))
    }

    /// `out[i] = scale sum_k w[k] src[k stride + i]` for `i < length`: each output vector summed in a register over
    /// the `count` sources and stored once.
    @inline(__always)
    static func weightedSum(_ w: UnsafePointer<Float>, scale: Float, _ src: UnsafePointer<Float>, stride: Int, count: Int,
                            length: Int, into out: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= length {
            var acc = SIMD8<Float>()
            for kk in 0..<count { acc = fma8(acc, SIMD8(repeating: scale * w[kk]), load8(src + kk * stride + i)) }
            store8(acc, out + i)
            i += 8
        }
        while i < length {
            var acc: Float = 0
            for kk in 0..<count { acc += scale * w[kk] * src[kk * stride + i] }
            out[i] = acc
            i += 1
        }
    }
}
