import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Per-row loops for the grouped low-rank update (see `LowRankDelta`), used when rows of one group are not
/// consecutive, and for `H = x left` below rank 8: each row reads its group's factors directly, with no gather, no
/// scatter and no matmul call per row. (The expansions `H right` and `dH left^T` are `GemmRowTail`s, per row too.)
///
/// ```
/// row m of group g:  h[m] = x[m] left[g]                 ([R], projection)
/// backward:          dH[m] = dY[m] right[g]^T            ([R], projection by transposed factors)
///                    dRight[g] += h[m]^T dY[m];   dLeft[g] += x[m]^T dH[m]
/// ```
/// Factors are contiguous: `left` `[GL, in, R]` (GL = 1 when shared), `right` `[G, R, out]`. Inner loops run over
/// `in`, `out` or `R` with unit stride; the projections are written with `SIMD8`.
enum RowwiseLowRank {
    /// `out[row] = src[row] F[g(row)]` for factors `F` stored `[GL, width, R]`, or (`transposed`) `F^T` for factors
    /// stored `[G, R, width]`. Below rank 8 untransposed factors are first transposed to `[R, width]`, so each of
    /// the R values is a dot product vectorised over `width` instead of an update vectorised over the short `R`.
    /// Rows are split among threads above the matmul threshold.
    static func project(_ src: UnsafePointer<Float>, width: Int, factors: UnsafePointer<Float>, transposed: Bool,
                        rank: Int, shared: Bool, groupOf: UnsafeBufferPointer<Int>, into out: UnsafeMutablePointer<Float>,
                        threads: Int) {
        let groups = shared ? 1 : (groupOf.max() ?? -1) + 1
        let copy: UnsafeMutablePointer<Float>? = !transposed && rank < 8 ? .allocate(capacity: groups * rank * width) : nil
        defer { copy?.deallocate() }
        if let copy {                                                        // [GL, R, width]
            LowRankDelta.transposeFactors(factors, groups: groups, rows: width, cols: rank, into: copy, threads: threads)
        }
        let rowsOfR = UncheckedSendable(copy.map { UnsafePointer($0) } ?? (transposed ? factors : nil))   // [GL, R, width]
        UnrolledRank.with(rank) { rank in
            Parallel.forEachPart(count: groupOf.count, work: groupOf.count * rank * width, threshold: Gemm.parallelThreshold,
                                 threads: threads) { part in
                for row in part {
                    let g = shared ? 0 : groupOf[row], xr = src + row * width, hr = out + row * rank
                    if let f = rowsOfR.value {
                        let fg = f + g * rank * width
                        for j in 0..<rank { hr[j] = dot(xr, fg + j * width, count: width) }
                    } else {
                        let fg = factors + g * width * rank
                        hr.update(repeating: 0, count: rank)
                        for i in 0..<width {
                            let xi = xr[i], fi = fg + i * rank
                            for j in 0..<rank { hr[j] += xi * fi[j] }
                        }
                    }
                }
            }
        }
    }

    /// `dRight[g] += h[m]^T dY[m]` (h already scaled) and `dLeft[g] += x[m]^T dH[m]` row by row, for per-group factors;
    /// nil outputs (and a nil `dh`) are skipped. One thread: rows of a group write the same factor.
    static func accumulateGradients(g: UnsafePointer<Float>, x: UnsafePointer<Float>, h: UnsafePointer<Float>,
                                    dh: UnsafePointer<Float>?, groupOf: UnsafeBufferPointer<Int>, inF: Int, rank: Int,
                                    outF: Int, dLeft: UnsafeMutablePointer<Float>?, dRight: UnsafeMutablePointer<Float>?) {
        UnrolledRank.with(rank) { rank in
            for (row, grp) in groupOf.enumerated() {
                if let dRight {
                    let gr = g + row * outF, hr = h + row * rank, drg = dRight + grp * rank * outF
                    for j in 0..<rank {
                        let hj = hr[j], drj = drg + j * outF
                        for o in 0..<outF { drj[o] += hj * gr[o] }
                    }
                }
                if let dLeft, let dh {
                    let xr = x + row * inF, dhr = dh + row * rank, dlg = dLeft + grp * inF * rank
                    for i in 0..<inF {
                        let xi = xr[i], dli = dlg + i * rank
                        for j in 0..<rank { dli[j] += xi * dhr[j] }
                    }
                }
            }
        }
    }
}
