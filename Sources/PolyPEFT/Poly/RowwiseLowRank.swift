/// Per-row loops for the grouped low-rank update (see `LowRankDelta`), used when rows of one group are not
/// consecutive, and for every forward below rank 8: each row reads its group's factors directly, with no gather, no
/// scatter and no matmul call per row.
///
/// ```
/// row m of group g:  h[m] = x[m] left[g] ([R]);   y[m] = h[m] right[g] ([out])      (right already scaled)
/// backward:          dRight[g] += h[m]^T dY[m];   dH[m] = dY[m] right[g]^T;
///                    dLeft[g] += x[m]^T dH[m];    dX[m] = dH[m] left[g]^T
/// ```
/// `left`: [GL, in, R] (GL = 1 when shared), `right`: [G, R, out], all contiguous. The innermost loops run over `R`,
/// `out` or `in` with unit stride, so the compiler vectorises them; the forward's are written with `SIMD8`. `dRight`
/// accumulates the unscaled `H^T dY` (the caller scales it).
enum RowwiseLowRank {
    /// `groups`: the number of left factors (`GL`). Below rank 8 each group's left factor is first transposed to
    /// `[R, in]`, so `h[m, j]` is a dot product vectorised over `in` instead of an update vectorised over the short `R`.
    static func forward(x: UnsafePointer<Float>, left: UnsafePointer<Float>, right: UnsafePointer<Float>, rowGroups: [Int],
                        shared: Bool, groups: Int, inF: Int, rank: Int, outF: Int,
                        h: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int) {
        let gl = shared ? 1 : groups
        let leftT: UnsafeMutablePointer<Float>? = rank < 8 ? .allocate(capacity: gl * rank * inF) : nil   // [GL, R, in]
        defer { leftT?.deallocate() }
        if let leftT {
            for g in 0..<gl { for j in 0..<rank {
                let src = left + g * inF * rank + j, dst = leftT + (g * rank + j) * inF
                for i in 0..<inF { dst[i] = src[i * rank] }
            } }
        }
        // Rows are independent: above the matmul threshold they are split among the threads.
        let rows = rowGroups.count
        let lt = UncheckedSendable(leftT)
        rowGroups.withUnsafeBufferPointer { groupOf in UnrolledRank.with(rank) { rank in
            Parallel.forEachPart(count: rows, work: rows * rank * (inF + outF), threshold: Gemm.parallelThreshold,
                                 threads: threads) { part in
                for row in part {
                    let g = groupOf[row], xr = x + row * inF, hr = h + row * rank
                    if let leftT = lt.value {
                        let lg = leftT + (shared ? 0 : g * rank * inF)
                        for j in 0..<rank { hr[j] = dot(xr, lg + j * inF, count: inF) }
                    } else {
                        let lg = left + (shared ? 0 : g * inF * rank)
                        hr.update(repeating: 0, count: rank)
                        for i in 0..<inF {
                            let xi = xr[i], li = lg + i * rank
                            for j in 0..<rank { hr[j] += xi * li[j] }
                        }
                    }
                    combine(hr, rank: rank, right + g * rank * outF, outF: outF, into: y + row * outF)
                }
            }
        } }
    }

    /// `y[o] = sum_j h[j] right[j, o]` for one row (`right`: `[R, out]`), eight outputs at a time in registers.
    @inline(__always)
    static func combine(_ h: UnsafePointer<Float>, rank: Int, _ right: UnsafePointer<Float>, outF: Int,
                        into y: UnsafeMutablePointer<Float>) {
        var o = 0
        while o + 8 <= outF {
            var acc = SIMD8<Float>()
            for j in 0..<rank { acc = fma8(acc, SIMD8(repeating: h[j]), load8(right + j * outF + o)) }
            store8(acc, y + o)
            o += 8
        }
        while o < outF {
            var s: Float = 0
            for j in 0..<rank { s += h[j] * right[j * outF + o] }
            y[o] = s
            o += 1
        }
    }

    /// `dh` `[M, R]` is written when `dx` or `needsDH` asks for it (a shared left's gradient is one product over all
    /// rows, done by the caller); `dx` `[M, in]` is overwritten; `dLeft`, `dRight` accumulate. Nil outputs are skipped.
    static func backward(g: UnsafePointer<Float>, x: UnsafePointer<Float>, left: UnsafePointer<Float>, right: UnsafePointer<Float>,
                         h: UnsafePointer<Float>, rowGroups: [Int], shared: Bool, inF: Int, rank: Int, outF: Int,
                         dh: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                         dLeft: UnsafeMutablePointer<Float>?, dRight: UnsafeMutablePointer<Float>?, needsDH: Bool) {
        for (row, grp) in rowGroups.enumerated() {
            let gr = g + row * outF, hr = h + row * rank, rg = right + grp * rank * outF
            if let dRight {
                let drg = dRight + grp * rank * outF
                for j in 0..<rank {
                    let hj = hr[j], drj = drg + j * outF
                    for o in 0..<outF { drj[o] += hj * gr[o] }
                }
            }
            guard dx != nil || needsDH else { continue }
            let dhr = dh + row * rank
            for j in 0..<rank {
                let rj = rg + j * outF
                var s: Float = 0
                for o in 0..<outF { s += gr[o] * rj[o] }
                dhr[j] = s
            }
            let xr = x + row * inF, lg = left + (shared ? 0 : grp * inF * rank)
            if let dLeft {
                let dlg = dLeft + (shared ? 0 : grp * inF * rank)
                for i in 0..<inF {
                    let xi = xr[i], dli = dlg + i * rank
                    for j in 0..<rank { dli[j] += xi * dhr[j] }
                }
            }
            if let dx {
                let dxr = dx + row * inF
                for i in 0..<inF {
                    let li = lg + i * rank
                    var s: Float = 0
                    for j in 0..<rank { s += dhr[j] * li[j] }
                    dxr[i] = s
                }
            }
        }
    }
}
