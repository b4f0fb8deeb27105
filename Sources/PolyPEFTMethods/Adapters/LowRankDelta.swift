import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The heavy part of every routed LoRA layer as one primitive: rows of `x` are partitioned into groups, and each
/// group gets its own pair of low-rank factors. Optionally fused with the base layer the update belongs to.
///
/// ```
/// x: [M, in]; left: [GL, in, R] (GL = G, or 1 when shared by all groups); right: [G, R, out]; W: [out, in]
/// Hs = x left[g(row)] * scale                                             // Hs: [M, R]
/// y = Hs right[g(row)]                              alone, or             // y: [M, out]
/// y = x W^T + b + Hs right[g(row)]                  fused with a base layer
/// backward (dY = g):
///   dRight[g] += Hs^T dY;   dH = dY right^T * scale;   dLeft[g] += X^T dH
///   dX = [dY W +] dH left^T;     dW = dY^T x;   db = sum_rows dY
/// ```
/// `H` is computed per *run* of consecutive rows of one group with a skinny product (a sequence's tokens share its
/// task, and in training every sample is its own group), reading `x` in place, or per row for short runs and below
/// rank 8 (`RowwiseLowRank`). The expansion `H right` is a `GemmRowTail`: fused with a base layer, the base matmul
/// adds it to its register tiles as it stores them, so the update costs its flops and neither a pass over `y` nor an
/// addition; `dX`'s `dH left^T` rides on the `dY W` product the same way. Alone, the tail is applied row by row.
/// Groups (`dLeft`, `dRight`) and runs are shared among threads when there are enough of them; a single run gets the
/// threads inside its products instead. `reference` keeps the gather / two-matmul / scatter form as the test oracle.
enum LowRankDelta {
    /// The base layer an update can be fused with: `x W^T + b`, `weight: [out, in]`, `bias: [out]`.
    struct Base {
        let weight: Variable
        let bias: Variable?
    }

    static func apply(_ x: Variable, left: Variable, right: Variable, rowGroups: [Int], groupCount: Int,
                      scale: Float, base: Base? = nil) throws -> Variable {
        // The scale goes on the [M, R] intermediates, not on a factor: no pass over `right`, none over its gradient.
        let xv = x.value.contiguous(), lv = left.value.contiguous()      // x: [M, in], left: [GL, in, R]
        let rs = right.value.contiguous()                                  // right: [G, R, out]
        let m = xv.shape[0], inF = xv.shape[1], rank = lv.shape[2], outF = rs.shape[2]
        let shared = lv.shape[0] == 1
        let wv = base?.weight.value.contiguous(), bv = base?.bias?.value.contiguous()   // W: [out, in], b: [out]
        if let wv, wv.shape != [outF, inF] {
            throw TensorError("linear", "weight \(fmt(wv.shape)) does not fit input \(fmt(xv.shape)) and update width \(outF)")
        }
        if let bv, bv.shape != [outF] { throw TensorError("linear", "bias \(fmt(bv.shape)) does not fit \(outF) outputs") }
        let threads = Parallel.currentThreads
        let rowwise = LowRankDelta.prefersRowwise(runs: RowRuns.count(rowGroups), rows: m)
        let runs = rowwise ? nil : RowRuns(rowGroups: rowGroups, groupCount: groupCount)   // per-row loops need no runs
        // Hs = X left * scale (kept for backward), then y = [x W^T +] Hs right (+ b). Every element of h and y is
        // written: no zero fill first.
        var h = Tensor.uninitializedScalars(m * rank)                        // Hs: [M, R]
        var y = Tensor.uninitializedScalars(m * outF)                        // [M, out]
        rowGroups.withUnsafeBufferPointer { groupOf in
        Tensor.withBuffers(xv, lv, rs, writing: &h, &y) { px, pl, pr, bh, by in
            project(px.baseAddress!, width: inF, factors: pl.baseAddress!, transposed: false, rank: rank, shared: shared,
                    groupOf: groupOf, runs: rank >= rowwiseRankLimit ? runs : nil, scale: scale, into: bh.baseAddress!,
                    threads: threads)
            let tail = GemmRowTail(h: bh.baseAddress!, rank: rank, factors: pr.baseAddress!, ldf: outF,
                                   groupStride: rank * outF, groupOfRow: groupOf.baseAddress)
            expand(tail, rows: m, width: outF, base: wv, baseTransposed: true, input: px.baseAddress!, depth: inF,
                   into: by.baseAddress!, threads: threads)
            if let bv { bv.withContiguousBuffer { Gemm.addRowVector($0.baseAddress!, rows: m, into: by.baseAddress!, width: outF) } }
        } }
        let hv = Tensor(h, shape: [m, rank])
        let inputs = [x, left, right] + (base.map { [$0.weight] + ($0.bias.map { [$0] } ?? []) } ?? [])
        return Variable.record(Tensor(y, shape: [m, outF]), inputs) { g, needs in
            let gv = g.contiguous()                                        // dY: [M, out]
            let (needX, needL, needR) = (needs[0], needs[1], needs[2])
            let needW = needs.count > 3 && needs[3], needB = needs.count > 4 && needs[4]
            var dh = needX || needL ? Tensor.uninitializedScalars(m * rank) : []   // dH = dY right^T * scale: [M, R]
            var dx = needX ? Tensor.uninitializedScalars(m * inF) : []   // every element written, like y
            var dl = needL ? [Float](repeating: 0, count: lv.count) : []
            var dr = needR ? [Float](repeating: 0, count: rs.count) : []
            rowGroups.withUnsafeBufferPointer { groupOf in
            Tensor.withBuffers(gv, xv, lv, writing: &dh, &dx) { pg, px, pl, pdh, pdx in
            Tensor.withBuffers(rs, hv, writing: &dl, &dr) { pr, ph, pdl, pdr in
                let (g0, x0, l0, r0, h0) = (pg.baseAddress!, px.baseAddress!, pl.baseAddress!, pr.baseAddress!, ph.baseAddress!)
                let (dh0, dl0, dr0) = (needX || needL ? pdh.baseAddress : nil, needL ? pdl.baseAddress : nil,
                                       needR ? pdr.baseAddress : nil)
                if let dh0 {
                    project(g0, width: outF, factors: r0, transposed: true, rank: rank, shared: false, groupOf: groupOf,
                            runs: runs, scale: scale, into: dh0, threads: threads)
                }
                accumulateFactorGradients(g: g0, x: x0, h: h0, dh: dh0, groupOf: groupOf, runs: runs, shared: shared,
                                          inF: inF, rank: rank, outF: outF, dLeft: dl0, dRight: dr0, threads: threads)
                if needX, let dh0 {
                    // dX = [dY W +] dH left^T: the left factors transposed to [GL, R, in] so the tail reads rows.
                    let lt = UnsafeMutablePointer<Float>.allocate(capacity: lv.count)
                    defer { lt.deallocate() }
                    transposeFactors(l0, groups: lv.shape[0], rows: inF, cols: rank, into: lt, threads: threads)
                    let tail = GemmRowTail(h: dh0, rank: rank, factors: lt, ldf: inF, groupStride: rank * inF,
                                           groupOfRow: shared ? nil : groupOf.baseAddress)
                    expand(tail, rows: m, width: inF, base: wv, baseTransposed: false, input: g0, depth: outF,
                           into: pdx.baseAddress!, threads: threads)
                }
            } } }
            let dw = needW ? try gv.T.matmul(xv) : nil                          // dW = dY^T x: [out, in]
            let db = needB ? try gv.sum(axes: [0]) : nil                        // [out]
            return [needX ? Tensor(dx, shape: [m, inF]) : nil, needL ? Tensor(dl, shape: lv.shape) : nil,
                    needR ? Tensor(dr, shape: rs.shape) : nil, dw, db]
        }
    }

    /// `out[row] = src[row] F[g(row)] * scale` (`[M, R]`) for factors `F [GL, width, R]`, or `F^T` for `transposed`
    /// factors stored `[G, R, width]`: a skinny product per run when `runs` is given, else per-row loops.
    static func project(_ src: UnsafePointer<Float>, width: Int, factors: UnsafePointer<Float>, transposed: Bool,
                        rank: Int, shared: Bool, groupOf: UnsafeBufferPointer<Int>, runs: RowRuns?, scale: Float,
                        into out: UnsafeMutablePointer<Float>, threads: Int) {
        if let runs {
            let out = UncheckedSendable(out)
            runs.forEachRun(threads: threads) { run, inner in
                let f = factors + (shared ? 0 : run.group * width * rank)
                Gemm.multiply(m: run.count, n: rank, k: width, a: src + run.start * width, rowStrideA: width, colStrideA: 1,
                              b: f, rowStrideB: transposed ? 1 : rank, colStrideB: transposed ? width : 1,
                              c: out.value + run.start * rank, ldc: rank, accumulate: false, threads: inner)
            }
        } else {
            RowwiseLowRank.project(src, width: width, factors: factors, transposed: transposed, rank: rank, shared: shared,
                                   groupOf: groupOf, into: out, threads: threads)
        }
        if scale != 1 { for i in 0..<groupOf.count * rank { out[i] *= scale } }
    }

    /// `dst[g] = src[g]^T` for `groups` row-major `[rows, cols]` matrices, split among threads by groups when large.
    static func transposeFactors(_ src: UnsafePointer<Float>, groups: Int, rows: Int, cols: Int,
                                 into dst: UnsafeMutablePointer<Float>, threads: Int) {
        let out = UncheckedSendable(dst)
        Parallel.forEachPart(count: groups, work: groups * rows * cols, threshold: Parallel.elementwiseThreshold,
                             threads: threads) { part in
            for g in part {
                let s = src + g * rows * cols, d = out.value + g * rows * cols
                for j in 0..<cols { for i in 0..<rows { d[j * rows + i] = s[i * cols + j] } }
            }
        }
    }

    /// `out = [input base' +] tail` over `[rows, width]`: the base product with the tail fused into its tiles, or
    /// the tail alone. `base` is a contiguous `Linear` weight, multiplied as `base^T` (`[width, depth]`, the forward
    /// `x W^T`) when `baseTransposed`, else as it is (`[depth, width]`, the input gradient `dY W`).
    static func expand(_ tail: GemmRowTail, rows: Int, width: Int, base: Tensor?, baseTransposed: Bool,
                       input: UnsafePointer<Float>, depth: Int, into out: UnsafeMutablePointer<Float>, threads: Int) {
        guard let base else {
            Parallel.forEachPart(count: rows, work: rows * width * tail.rank, threshold: Gemm.parallelThreshold,
                                 threads: threads) { part in
                tail.apply(rows: part, cols: 0..<width, c: out, ldc: width, overwrite: true)
            }
            return
        }
        base.withContiguousBuffer { pw in
            Gemm.multiply(m: rows, n: width, k: depth, a: input, rowStrideA: depth, colStrideA: 1, b: pw.baseAddress!,
                          rowStrideB: baseTransposed ? 1 : width, colStrideB: baseTransposed ? depth : 1,
                          c: out, ldc: width, accumulate: false, threads: threads, tail: tail)
        }
    }

    /// `dRight[g] += Hs^T dY` and `dLeft[g] += X^T dH` (per group; a shared left factor gets one product over all
    /// rows).
    static func accumulateFactorGradients(g: UnsafePointer<Float>, x: UnsafePointer<Float>, h: UnsafePointer<Float>,
                                          dh: UnsafeMutablePointer<Float>?, groupOf: UnsafeBufferPointer<Int>,
                                          runs: RowRuns?, shared: Bool, inF: Int, rank: Int, outF: Int,
                                          dLeft: UnsafeMutablePointer<Float>?, dRight: UnsafeMutablePointer<Float>?,
                                          threads: Int) {
        let perGroupLeft = shared ? nil : dLeft
        if let runs {
            let out = UncheckedSendable((dh, perGroupLeft, dRight))
            runs.forEachGroup(threads: threads) { group, inner in
                let (dh, dl, dr) = out.value
                for run in group {
                    let (s, c, gi) = (run.start, run.count, run.group)
                    if let dr {
                        Gemm.multiply(m: rank, n: outF, k: c, a: h + s * rank, rowStrideA: 1, colStrideA: rank,
                                      b: g + s * outF, rowStrideB: outF, colStrideB: 1, c: dr + gi * rank * outF,
                                      ldc: outF, accumulate: true, threads: inner)
                    }
                    if let dl, let dh {
                        Gemm.multiply(m: inF, n: rank, k: c, a: x + s * inF, rowStrideA: 1, colStrideA: inF,
                                      b: dh + s * rank, rowStrideB: rank, colStrideB: 1, c: dl + gi * inF * rank,
                                      ldc: rank, accumulate: true, threads: inner)
                    }
                }
            }
        } else {
            RowwiseLowRank.accumulateGradients(g: g, x: x, h: h, dh: dh, groupOf: groupOf, inF: inF, rank: rank,
                                               outF: outF, dLeft: perGroupLeft, dRight: dRight)
        }
        if shared, let dLeft, let dh {
            Gemm.multiply(m: inF, n: rank, k: groupOf.count, a: x, rowStrideA: 1, colStrideA: inF, b: dh,
                          rowStrideB: rank, colStrideB: 1, c: dLeft, ldc: rank, accumulate: false, threads: threads)
        }
    }

    /// The oracle: gather each group's rows, two matmuls, scatter back (no gradients).
    static func reference(_ x: Tensor, left: Tensor, right: Tensor, rowGroups: [Int], groupCount: Int,
                          scale: Float) throws -> Tensor {
        let m = x.shape[0], outF = right.shape[2]
        var out = [Float](repeating: 0, count: m * outF)
        for gi in 0..<groupCount {
            let rows = rowGroups.indices.filter { rowGroups[$0] == gi }
            guard !rows.isEmpty else { continue }
            let xg = try x.indexSelect(axis: 0, rows)                                                   // [Mg, in]
            let lg = try left.selecting(axis: 0, index: left.shape[0] == 1 ? 0 : gi)                     // [in, R]
            let yg = (try xg.matmul(lg).matmul(try right.selecting(axis: 0, index: gi)) * scale).scalars  // [Mg, out]
            for (i, row) in rows.enumerated() { for j in 0..<outF { out[row * outF + j] = yg[i * outF + j] } }
        }
        return Tensor(out, shape: [m, outF])
    }
}
