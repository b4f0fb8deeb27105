/// Attention one (sample, head) block at a time: the scores of a block (`[Tq, Tk]`) live in a worker's scratch and
/// never as a `[B, H, Tq, Tk]` tensor, in the forward and in the backward (which recomputes them).
///
/// ```
/// per (b, h), on one worker:                         q_bh: [Tq, D], k_bh: [Tk, D], v_bh: [Tk, Dv]
///   S = q_bh k_bh^T * scale + mask_bh;  P = softmax(S)          scratch [Tq, Tk]
///   O_bh = (P * M_bh) v_bh                                       M: the dropout mask, if any
/// backward, per (b, h):  P recomputed as above
///   dV_bh = (P * M_bh)^T g_bh,  dP = (g_bh v_bh^T) * M_bh,  dS = P * (dP - rowsum(P * dP))
///   dq_bh = dS k_bh * scale,    dk_bh = dS^T q_bh * scale
/// ```
/// Same maths as `Variable.attention`'s materialised form (the test oracle is `attentionReference`), which it
/// replaces when there is no trainable bias: a block is 64 KiB at T = 128, so the scores stay in L2 instead of
/// streaming 25 MiB per layer through memory at 32 x 128, and training keeps no probabilities between forward and
/// backward (BENCHMARKS.md, "Issue 21, first round").
enum BlockedAttention {
    /// `O = (softmax(q k^T * scale + mask) * dropout) v`: [B, H, Tq, Dv].
    static func forward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, scale: Float, dropout: Tensor?) -> Tensor {
        let (b, h, tq, tk, dv) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], v.shape[3])
        var out = Tensor.uninitializedScalars(b * h * tq * dv)
        let level = SIMDLevel.current, workers = Swift.min(Parallel.currentThreads, b * h)
        // One block of scores per worker, allocated here: a block allocated and freed per task on a helper thread
        // is returned to the system by glibc's per-thread arena each time and faults its pages in again.
        var scratch = Tensor.uninitializedScalars(workers * tq * tk)
        withBlocks(q, k, v, mask: mask, dropout: dropout) { blocks in
            out.withUnsafeMutableBufferPointer { po in
                scratch.withUnsafeMutableBufferPointer { ps in
                    let (o, scores) = (po.baseAddress!, ps.baseAddress!)
                    Parallel.forEach(tasks: b * h, workers: workers) { task, worker in
                        let p = scores + worker * tq * tk
                        let (bi, hi) = (task / h, task % h)
                        blocks.probabilities(bi, hi, scale: scale, into: p, level: level)
                        blocks.applyDropout(bi, hi, to: p)
                        blocks.multiply(m: tq, n: dv, k: tk, p, rs: tk, cs: 1, blocks.v, blocks.vStart(bi, hi),
                                        rs: blocks.vs[2], cs: blocks.vs[3], into: o + task * tq * dv, ldc: dv, level: level)
                    }
                }
            }
        }
        return Tensor(out, shape: [b, h, tq, dv])
    }

    /// `(dq, dk, dv)` for the output gradient `g` ([B, H, Tq, Dv]), each only when asked for.
    static func backward(_ g: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor?, scale: Float, dropout: Tensor?,
                         needs: (q: Bool, k: Bool, v: Bool)) -> (Tensor?, Tensor?, Tensor?) {
        let (b, h, tq, tk, d, dvn) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3])
        var dq = needs.q ? Tensor.uninitializedScalars(b * h * tq * d) : []
        var dk = needs.k ? Tensor.uninitializedScalars(b * h * tk * d) : []
        var dv = needs.v ? Tensor.uninitializedScalars(b * h * tk * dvn) : []
        let level = SIMDLevel.current, workers = Swift.min(Parallel.currentThreads, b * h)
        let gc = g.contiguous()
        var scratch = Tensor.uninitializedScalars(workers * 2 * tq * tk)        // P and dS per worker, as in `forward`
        withBlocks(q, k, v, mask: mask, dropout: dropout) { blocks in
            Tensor.withBuffers(gc, writing: &dq, &dk) { pg, pdq, pdk in
                dv.withUnsafeMutableBufferPointer { pdv in
                    scratch.withUnsafeMutableBufferPointer { pscratch in
                        let (gs, scores) = (pg.baseAddress!, pscratch.baseAddress!)
                        let (dqs, dks, dvs) = (needs.q ? pdq.baseAddress : nil, needs.k ? pdk.baseAddress : nil,
                                               needs.v ? pdv.baseAddress : nil)
                        Parallel.forEach(tasks: b * h, workers: workers) { task, worker in
                            let p = scores + worker * 2 * tq * tk, ds = p + tq * tk       // [Tq, Tk] each
                            let (bi, hi) = (task / h, task % h)
                            let gb = gs + task * tq * dvn                                 // g_bh: [Tq, Dv]
                            blocks.probabilities(bi, hi, scale: scale, into: p, level: level)
                            // dP = (g v^T) * M, then dS (reading P before P * M overwrites it below)
                            blocks.multiply(m: tq, n: tk, k: dvn, gb, rs: dvn, cs: 1, blocks.v, blocks.vStart(bi, hi),
                                            rs: blocks.vs[3], cs: blocks.vs[2], into: ds, ldc: tk, level: level)
                            blocks.applyDropout(bi, hi, to: ds)
                            for r in 0..<tq { softmaxBackwardRow(ds + r * tk, p + r * tk, tk) }
                            if let dvs {                                                  // dV = (P * M)^T g
                                blocks.applyDropout(bi, hi, to: p)
                                blocks.multiply(m: tk, n: dvn, k: tq, p, rs: 1, cs: tk, gb, 0, rs: dvn, cs: 1,
                                                into: dvs + task * tk * dvn, ldc: dvn, level: level)
                            }
                            if let dqs {
                                blocks.multiply(m: tq, n: d, k: tk, ds, rs: tk, cs: 1, blocks.k, blocks.kStart(bi, hi),
                                                rs: blocks.ks[2], cs: blocks.ks[3], into: dqs + task * tq * d, ldc: d,
                                                level: level, scale: scale)
                            }
                            if let dks {
                                blocks.multiply(m: tk, n: d, k: tq, ds, rs: 1, cs: tk, blocks.q, blocks.qStart(bi, hi),
                                                rs: blocks.qs[2], cs: blocks.qs[3], into: dks + task * tk * d, ldc: d,
                                                level: level, scale: scale)
                            }
                        }
                    }
                }
            }
        }
        return (needs.q ? Tensor(dq, shape: [b, h, tq, d]) : nil, needs.k ? Tensor(dk, shape: [b, h, tk, d]) : nil,
                needs.v ? Tensor(dv, shape: [b, h, tk, dvn]) : nil)
    }

    /// The raw storages of q, k, v, the mask and the dropout mask, for the duration of `body`.
    static func withBlocks<R>(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: Tensor?, dropout: Tensor?, _ body: (Blocks) -> R) -> R {
        let full = [q.shape[0], q.shape[1], q.shape[2], k.shape[2]]
        let maskView = mask.map { try! $0.expanded(to: full) }       // checked broadcastable by the caller
        let drop = dropout?.contiguous()
        return q.storage.withUnsafeBufferPointer { pq in
            k.storage.withUnsafeBufferPointer { pk in
                v.storage.withUnsafeBufferPointer { pv in
                    (maskView?.storage ?? []).withUnsafeBufferPointer { pm in
                        (drop?.storage ?? []).withUnsafeBufferPointer { pd in
                            body(Blocks(q: pq.baseAddress!, qs: q.strides, qOffset: q.offset,
                                        k: pk.baseAddress!, ks: k.strides, kOffset: k.offset,
                                        v: pv.baseAddress!, vs: v.strides, vOffset: v.offset,
                                        mask: maskView == nil ? nil : pm.baseAddress, maskStrides: maskView?.strides ?? [],
                                        maskOffset: maskView?.offset ?? 0,
                                        dropout: drop == nil ? nil : pd.baseAddress,
                                        heads: full[1], tq: full[2], tk: full[3], depth: q.shape[3]))
                        }
                    }
                }
            }
        }
    }

    /// Pointers and strides of the operands of one call (q, k, v: [B, H, T, D] views; the mask broadcast to the
    /// scores' shape; the dropout mask contiguous [B, H, Tq, Tk]).
    struct Blocks {
        let q: UnsafePointer<Float>, qs: [Int], qOffset: Int
        let k: UnsafePointer<Float>, ks: [Int], kOffset: Int
        let v: UnsafePointer<Float>, vs: [Int], vOffset: Int
        let mask: UnsafePointer<Float>?, maskStrides: [Int], maskOffset: Int
        let dropout: UnsafePointer<Float>?
        let heads: Int, tq: Int, tk: Int, depth: Int

        func qStart(_ b: Int, _ h: Int) -> Int { qOffset + b * qs[0] + h * qs[1] }
        func kStart(_ b: Int, _ h: Int) -> Int { kOffset + b * ks[0] + h * ks[1] }
        func vStart(_ b: Int, _ h: Int) -> Int { vOffset + b * vs[0] + h * vs[1] }

        /// `p = softmax(q_bh k_bh^T * scale + mask_bh)` ([Tq, Tk]; a row of -inf only becomes zeros).
        func probabilities(_ b: Int, _ h: Int, scale: Float, into p: UnsafeMutablePointer<Float>, level: SIMDLevel) {
            multiply(m: tq, n: tk, k: depth, q, qStart(b, h), rs: qs[2], cs: qs[3], k, kStart(b, h), rs: ks[3], cs: ks[2],
                     into: p, ldc: tk, level: level)
            for i in 0..<tq {
                let row = p + i * tk
                if scale != 1 { rowScale8(row, tk, by: scale) }
                if let mask {
                    let start = maskOffset + b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2]
                    addScoreTerm(row, tk, mask + start, step: maskStrides[3])
                }
                softmaxScoreRow(row, tk)
            }
        }

        /// `p *= M_bh` (nothing without dropout).
        func applyDropout(_ b: Int, _ h: Int, to p: UnsafeMutablePointer<Float>) {
            guard let dropout else { return }
            let m = dropout + (b * heads + h) * tq * tk, n = tq * tk
            var j = 0
            while j + 8 <= n { store8(load8(p + j) * load8(m + j), p + j); j += 8 }
            while j < n { p[j] *= m[j]; j += 1 }
        }

        /// `C = A·B` (times `scale`) on one thread, A and B read through their strides.
        func multiply(m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, _ aStart: Int = 0, rs rsA: Int, cs csA: Int,
                      _ b: UnsafePointer<Float>, _ bStart: Int, rs rsB: Int, cs csB: Int,
                      into c: UnsafeMutablePointer<Float>, ldc: Int, level: SIMDLevel, scale: Float = 1) {
            Gemm.multiply(m: m, n: n, k: k, a: a + aStart, rowStrideA: rsA, colStrideA: csA, b: b + bStart, rowStrideB: rsB,
                          colStrideB: csB, c: c, ldc: ldc, accumulate: false, threads: 1, tail: nil, level: level)
            if scale != 1 { for i in 0..<m { rowScale8(c + i * ldc, n, by: scale) } }
        }
    }
}
