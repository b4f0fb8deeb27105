import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Routed low-rank update with **per-row** routing weights (training: every sample draws its own weights; batches
/// of many short tasks), as six matmuls per split whose intermediates are only `K r` wide.
///
/// ```
/// x: [M, in] (x_s: [M, d]),  A: [S, K, d, r] (Aw_s: [d, K r]),  B: [S, K, r, e] (Bw_s: [K r, e]),  w: [G, S, K]
/// row i of group g_i;  L' = L (parameters) or L_k (outputs)
/// U_s  = x_s Aw_s                                   [M, K r]         (u[i,s,k,j])
/// parameters: L[i]   = sum_s sum_k w[g_i,s,k] u[i,s,k]     [M, r]    (= x A_full, PEFT's mixed A)
/// outputs:    L_k[i] = sum_s u[i,s,k]                     [M, K, r]
/// C_s[i, k r + j] = scale w[g_i,s,k] L'[i, j]       [M, K r]
/// y_s  = C_s Bw_s                                   [M, e]
/// backward (dY_s = G_s):
///   dBw_s = C_s^T G_s;   dC_s = G_s Bw_s^T
///   dL'[i,j] += scale w[g_i,s,k] dC[i,s,k,j];   dw[g_i,s,k] += scale <L'[i], dC[i,s,k]>
///   dU[i,s,k] = w[g_i,s,k] dL[i] (parameters; and dw[g_i,s,k] += <u[i,s,k], dL[i]>)  or  dL_k[i] (outputs)
///   dAw_s = x_s^T dU_s;   dx_s = dU_s Aw_s^T
/// ```
/// PEFT's form builds a mixed `A` and `B` per sample (`[M, in, r]`, `[M, r, out]`); this never builds anything
/// wider than `[M, S K r]`, and the matmuls read `x`, `dY`, `B` and the outputs in place through strides.
/// `reference` is the test oracle: a plain Double loop over the per-row mixed factors.
enum RoutedLowRank {
    /// `x: [M, in]`, `a: [S, K, d, r]`, `b: [S, K, r, e]`, `w: [G, S, K]`, `rowGroups: [M]` -> `[M, S*e]`.
    static func apply(_ x: Variable, a: Variable, b: Variable, weights w: Variable, rowGroups: [Int], mode: MixingMode,
                      scale: Float) throws -> Variable {
        let (s, k, d, r, e) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3], b.shape[3])
        let m = x.shape[0], params = mode == .parameters, c = params ? 1 : k, kr = k * r, skr = s * k * r
        guard x.shape == [m, s * d], b.shape == [s, k, r, e], w.shape.count == 3, w.shape[1] == s, w.shape[2] == k,
              rowGroups.count == m, rowGroups.allSatisfy({ $0 >= 0 && $0 < w.shape[0] }) else {
            throw TensorError("routed_low_rank", "x \(fmt(x.shape)), A \(fmt(a.shape)), B \(fmt(b.shape)), w \(fmt(w.shape)) and \(rowGroups.count) row groups do not fit")
        }
        let threads = Parallel.currentThreads
        let xv = x.value.contiguous(), bv = b.value.contiguous(), wv = w.value.contiguous()
        let aw = try a.value.permuted([0, 2, 1, 3]).contiguous()                  // Aw: [S, d, K, r] = [S, d, K r]
        // Kept for backward, in one allocation: U [M, S, K, r], then L' [M, C, r], then C [M, S, K r].
        var saved = Tensor.uninitializedScalars(m * (2 * skr + c * r))
        var y = Tensor.uninitializedScalars(m * s * e)                             // y: [M, S e]
        Tensor.withBuffers(xv, aw, bv, wv, writing: &saved, &y) { px, pa, pb, pw, ps, py in
            let (px, pa, pb, pw, py) = (px.baseAddress!, pa.baseAddress!, pb.baseAddress!, pw.baseAddress!, py.baseAddress!)
            let pu = ps.baseAddress!, pl = pu + m * skr, pc = pl + m * c * r
            pl.update(repeating: 0, count: m * c * r)
            for si in 0..<s {
                Gemm.multiply(m: m, n: kr, k: d, a: px + si * d, rowStrideA: s * d, colStrideA: 1, b: pa + si * d * kr,
                              rowStrideB: kr, colStrideB: 1, c: pu + si * kr, ldc: skr, accumulate: false, threads: threads)
            }
            let sk = s * k
            // Plain loops over the short r, compiled separately for the common ranks (`UnrolledRank`).
            UnrolledRank.with(r) { r in
                for i in 0..<m {
                    let wg = pw + rowGroups[i] * sk, ui = pu + i * skr, li = pl + i * c * r, ci = pc + i * skr
                    for q in 0..<sk {
                        let wt = params ? wg[q] : 1, uq = ui + q * r, lq = li + (params ? 0 : (q % k) * r)
                        for j in 0..<r { lq[j] += wt * uq[j] }
                    }
                    for q in 0..<sk {
                        let f = scale * wg[q], lq = li + (params ? 0 : (q % k) * r), cq = ci + q * r
                        for j in 0..<r { cq[j] = f * lq[j] }
                    }
                }
            }
            for si in 0..<s {
                Gemm.multiply(m: m, n: e, k: kr, a: pc + si * kr, rowStrideA: skr, colStrideA: 1, b: pb + si * kr * e,
                              rowStrideB: e, colStrideB: 1, c: py + si * e, ldc: s * e, accumulate: false, threads: threads)
            }
        }
        let savedTensor = Tensor(saved, shape: [saved.count])
        return Variable.record(Tensor(y, shape: [m, s * e]), [x, a, b, w]) { g, needs in
            let gv = g.contiguous()                                               // dY: [M, S e]
            // Scratch in one allocation: dC, then dU in place [M, S, K r]; then dL' of one row [C, r].
            var scratch = Tensor.uninitializedScalars(m * skr + c * r)
            var dx = needs[0] ? Tensor.uninitializedScalars(m * s * d) : []
            var daw = needs[1] ? Tensor.uninitializedScalars(s * d * kr) : []      // dAw: [S, d, K, r]
            var db = needs[2] ? Tensor.uninitializedScalars(s * kr * e) : []       // dB: [S, K r, e]
            var dw = needs[3] ? [Float](repeating: 0, count: wv.count) : []
            Tensor.withBuffers(gv, xv, aw, writing: &scratch, &dx) { pg, px, pa, pscratch, pdx in
            Tensor.withBuffers(bv, wv, savedTensor, writing: &daw, &db, &dw) { pb, pw, ps, pdaw, pdb, pdw in
                let (pg, px, pa, pb, pw) = (pg.baseAddress!, px.baseAddress!, pa.baseAddress!, pb.baseAddress!, pw.baseAddress!)
                let pu = ps.baseAddress!, pl = pu + m * skr, pc = pl + m * c * r
                let pdc = pscratch.baseAddress!, pdl = pdc + m * skr
                for si in 0..<s {
                    let gs = pg + si * e, bs = pb + si * kr * e
                    if needs[2] {
                        Gemm.multiply(m: kr, n: e, k: m, a: pc + si * kr, rowStrideA: 1, colStrideA: skr, b: gs,
                                      rowStrideB: s * e, colStrideB: 1, c: pdb.baseAddress! + si * kr * e, ldc: e,
                                      accumulate: false, threads: threads)
                    }
                    Gemm.multiply(m: m, n: kr, k: e, a: gs, rowStrideA: s * e, colStrideA: 1, b: bs, rowStrideB: 1,
                                  colStrideB: e, c: pdc + si * kr, ldc: skr, accumulate: false, threads: threads)
                }
                // dL', dw, then dC -> dU in place; plain loops over the short r.
                let sk = s * k
                UnrolledRank.with(r) { r in
                    for i in 0..<m {
                        let grp = rowGroups[i], wg = pw + grp * sk, li = pl + i * c * r, dli = pdl
                        let ui = pu + i * skr, dci = pdc + i * skr, dwg = needs[3] ? pdw.baseAddress! + grp * sk : nil
                        dli.update(repeating: 0, count: c * r)
                        for q in 0..<sk {
                            let off = params ? 0 : (q % k) * r, lq = li + off, dlq = dli + off, dq = dci + q * r
                            let f = scale * wg[q]
                            var dot: Float = 0
                            for j in 0..<r {
                                dlq[j] += f * dq[j]
                                dot += lq[j] * dq[j]
                            }
                            dwg?[q] += scale * dot
                        }
                        for q in 0..<sk {
                            let dq = dci + q * r
                            if params {
                                let uq = ui + q * r, wt = wg[q]
                                var dot: Float = 0
                                for j in 0..<r {
                                    dot += uq[j] * dli[j]
                                    dq[j] = wt * dli[j]
                                }
                                dwg?[q] += dot
                            } else {
                                let dlq = dli + (q % k) * r
                                for j in 0..<r { dq[j] = dlq[j] }
                            }
                        }
                    }
                }
                for si in 0..<s {
                    if needs[1] {
                        Gemm.multiply(m: d, n: kr, k: m, a: px + si * d, rowStrideA: 1, colStrideA: s * d, b: pdc + si * kr,
                                      rowStrideB: skr, colStrideB: 1, c: pdaw.baseAddress! + si * d * kr, ldc: kr,
                                      accumulate: false, threads: threads)
                    }
                    if needs[0] {
                        Gemm.multiply(m: m, n: d, k: kr, a: pdc + si * kr, rowStrideA: skr, colStrideA: 1, b: pa + si * d * kr,
                                      rowStrideB: 1, colStrideB: kr, c: pdx.baseAddress! + si * d, ldc: s * d,
                                      accumulate: false, threads: threads)
                    }
                }
            } }
            let da = needs[1] ? try Tensor(daw, shape: [s, d, k, r]).permuted([0, 2, 1, 3]).contiguous() : nil
            return [needs[0] ? Tensor(dx, shape: [m, s * d]) : nil, da,
                    needs[2] ? Tensor(db, shape: [s, k, r, e]) : nil, needs[3] ? Tensor(dw, shape: wv.shape) : nil]
        }
    }

    /// Plain loops in Double: per row, the mixed factors of its group's weights (PEFT's maths, or output mixing).
    static func reference(_ x: Tensor, _ a: Tensor, _ b: Tensor, _ w: Tensor, _ rowGroups: [Int], _ mode: MixingMode,
                   _ scale: Float) -> Tensor {
        let (s, k, d, r, e) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3], b.shape[3])
        let xs = x.scalars, av = a.scalars, bv = b.scalars, wv = w.scalars, m = x.shape[0]
        var y = [Float](repeating: 0, count: m * s * e)
        for i in 0..<m {
            let g = rowGroups[i]
            func wt(_ si: Int, _ kk: Int) -> Double { Double(wv[(g * s + si) * k + kk]) }
            // u[s][k][j] = x_s A[s,k][:, j]
            var u = [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: 0, count: r), count: k), count: s)
            for si in 0..<s { for kk in 0..<k { for j in 0..<r { for t in 0..<d {
                u[si][kk][j] += Double(xs[i * s * d + si * d + t]) * Double(av[((si * k + kk) * d + t) * r + j])
            } } } }
            for si in 0..<s { for o in 0..<e {
                var acc: Double = 0
                for kk in 0..<k { for j in 0..<r {
                    var left: Double = 0
                    for s2 in 0..<s {
                        if mode == .parameters { for k2 in 0..<k { left += wt(s2, k2) * u[s2][k2][j] } } else { left += u[s2][kk][j] }
                    }
                    acc += wt(si, kk) * left * Double(bv[((si * k + kk) * r + j) * e + o])
                } }
                y[i * s * e + si * e + o] = Float(acc) * scale
            } }
        }
        return Tensor(y, shape: [m, s * e])
    }
}
