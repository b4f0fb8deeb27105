/// Per-row loops for the grouped low-rank update when rows of one group are not consecutive (see `LowRankDelta`):
/// each row reads its group's factors directly, with no gather, no scatter and no matmul call per row.
///
/// ```
/// row m of group g:  h[m] = x[m] left[g] ([R]);   y[m] = h[m] right[g] ([out])      (right already scaled)
/// backward:          dRight[g] += h[m]^T dY[m];   dH[m] = dY[m] right[g]^T;
///                    dLeft[g] += x[m]^T dH[m];    dX[m] = dH[m] left[g]^T
/// ```
/// `left`: [GL, in, R] (GL = 1 when shared), `right`: [G, R, out], all contiguous. The innermost loops run over `R`,
/// `out` or `in` with unit stride, so the compiler vectorises them. `dRight` accumulates the unscaled `H^T dY` (the
/// caller scales it).
enum RowwiseLowRank {
    static func forward(x: UnsafePointer<Float>, left: UnsafePointer<Float>, right: UnsafePointer<Float>, rowGroups: [Int],
                        shared: Bool, inF: Int, rank: Int, outF: Int,
                        h: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        for (row, g) in rowGroups.enumerated() {
            let xr = x + row * inF, lg = left + (shared ? 0 : g * inF * rank), hr = h + row * rank
            hr.update(repeating: 0, count: rank)
            for i in 0..<inF {
                let xi = xr[i], li = lg + i * rank
                for j in 0..<rank { hr[j] += xi * li[j] }
            }
            let yr = y + row * outF, rg = right + g * rank * outF
            yr.update(repeating: 0, count: outF)
            for j in 0..<rank {
                let hj = hr[j], rj = rg + j * outF
                for o in 0..<outF { yr[o] += hj * rj[o] }
            }
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
