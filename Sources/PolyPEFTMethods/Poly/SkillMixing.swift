import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

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
        Tensor.withBuffers(wv, av, bv, writing: &left, &right) { pw, pa, pb, pl, pr in
            let (pw, pa, pb) = (pw.baseAddress!, pa.baseAddress!, pb.baseAddress!)
            let out = UncheckedSendable((pl.baseAddress!, pr.baseAddress!))
            // Work items: (split, source block, chunk of columns). Each chunk of the K sources (K x 512 floats) is
            // read once from memory and then stays in cache while every group sums it, instead of every group
            // streaming all of A and B (64 skills x 16 tasks of a 1024-wide layer: 4 MB per group). Items write
            // disjoint outputs; large mixings are shared among threads.
            let chunk = 512
            let aChunks = (d * r + chunk - 1) / chunk, bChunks = (e + chunk - 1) / chunk
            let perSplit = aChunks + r * bChunks
            Parallel.forEachPart(count: s * perSplit, work: g * s * k * r * (d + e), threshold: Gemm.parallelThreshold) { part in
                let (pl, pr) = out.value
                for item in part {
                    let (si, q) = item.quotientAndRemainder(dividingBy: perSplit)
                    if q < aChunks {
                        // left[g, s d ..< (s+1) d, :] = sum_k w[g,s,k] A[s,k]      (A[s,k]: d r floats, k-stride d r)
                        let c0 = q * chunk, n = Swift.min(chunk, d * r - c0)
                        for gi in 0..<g {
                            weightedSum(pw + (gi * s + si) * k, scale: 1, pa + si * k * d * r + c0, stride: d * r, count: k,
                                        length: n, into: pl + (gi * s + si) * d * r + c0)
                        }
                    } else {
                        // right[g, j, s e ..< (s+1) e] = scale sum_k w[g,s,k] B[s,k,j,:]   (k-stride r e)
                        let (j, c) = (q - aChunks).quotientAndRemainder(dividingBy: bChunks)
                        let c0 = c * chunk, n = Swift.min(chunk, e - c0)
                        for gi in 0..<g {
                            weightedSum(pw + (gi * s + si) * k, scale: scale, pb + (si * k * r + j) * e + c0, stride: r * e,
                                        count: k, length: n, into: pr + (gi * r + j) * s * e + si * e + c0)
                        }
                    }
                }
            }
        }
        return (Tensor(left, shape: [g, s * d, r]), Tensor(right, shape: [g, r, s * e]))
    }

    /// `out[i] = scale sum_k w[k] src[k stride + i]` for `i < length`, summed in order of `k`. Sources are read four
    /// at a time, with the partial sums kept in `out` (a chunk of at most 512 floats, in L1) between rounds: the
    /// sources sit a power-of-two stride apart (`d r` floats), and reading all K of them at once made them evict
    /// each other from the cache (64 skills: 1.7 GFLOP/s).
    @inline(__always)
    static func weightedSum(_ w: UnsafePointer<Float>, scale: Float, _ src: UnsafePointer<Float>, stride: Int, count: Int,
                            length: Int, into out: UnsafeMutablePointer<Float>) {
        var k0 = 0
        while k0 < count {
            let kn = Swift.min(4, count - k0), first = k0 == 0
            let src0 = src + k0 * stride
            var i = 0
            while i + 8 <= length {
                var acc = first ? SIMD8<Float>() : load8(out + i)
                for q in 0..<kn { acc = fma8(acc, SIMD8(repeating: scale * w[k0 + q]), load8(src0 + q * stride + i)) }
                store8(acc, out + i)
                i += 8
            }
            while i < length {
                var acc: Float = first ? 0 : out[i]
                for q in 0..<kn { acc += scale * w[k0 + q] * src0[q * stride + i] }
                out[i] = acc
                i += 1
            }
            k0 += kn
        }
    }
}
