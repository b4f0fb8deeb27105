/// The heavy part of every routed LoRA layer as one primitive: rows of `x` are partitioned into groups, and each
/// group gets its own pair of low-rank factors.
///
/// ```
/// x: [M, in]; left: [GL, in, R] (GL = G, or 1 when shared by all groups); right: [G, R, out]
/// y[rows of g] = x[rows of g] @ left[g or 0] @ right[g] * scale            // y: [M, out]
/// backward, per group (X = x rows, H = X left, dY = g rows):
///   dRight[g] = H^T dY * scale;   dH = dY right^T * scale
///   dLeft[g] (+)= X^T dH;         dX = dH left^T
/// ```
/// Rows are processed in *runs* of consecutive rows of one group (a sequence's tokens share its task, and in
/// training every sample is its own group), so the products read `x`, `dY` and write `y`, `dX` in place through
/// pointers: no row is gathered or scattered. Runs (forward, `dX`) and groups (`dLeft`, `dRight`) are shared among
/// threads when there are enough of them; a single run gets the threads inside its products instead.
/// Short runs, and every forward below rank 8, use per-row loops instead (`RowwiseLowRank`). `reference` keeps the
/// plain gather / two-matmul / scatter form as the test oracle.
enum LowRankDelta {
    static func apply(_ x: Variable, left: Variable, right: Variable, rowGroups: [Int], groupCount: Int,
                      scale: Float) throws -> Variable {
        let xv = x.value.contiguous(), lv = left.value.contiguous()      // x: [M, in], left: [GL, in, R]
        let rs = (right.value * scale).contiguous()                        // right * scale: [G, R, out]
        let m = xv.shape[0], inF = xv.shape[1], rank = lv.shape[2], outF = rs.shape[2]
        let shared = lv.shape[0] == 1
        let threads = Parallel.currentThreads
        let rowwise = LowRankDelta.prefersRowwise(runs: RowRuns.count(rowGroups), rows: m)
        let runs = rowwise ? nil : RowRuns(rowGroups: rowGroups, groupCount: groupCount)   // per-row loops need no runs
        // Forward: H = X left (unscaled, kept for backward), y = H (right * scale), run by run.
        // Every row belongs to one run, so the kernels write every element of h and y: no zero fill first.
        var h = Tensor.uninitializedScalars(m * rank)                        // [M, R]
        var y = Tensor.uninitializedScalars(m * outF)                        // [M, out]
        xv.withContiguousBuffer { px in lv.withContiguousBuffer { pl in rs.withContiguousBuffer { pr in
            h.withUnsafeMutableBufferPointer { bh in y.withUnsafeMutableBufferPointer { by in
                let (ph, py) = (UncheckedSendable(bh.baseAddress!), UncheckedSendable(by.baseAddress!))
                guard let runs, rank >= LowRankDelta.rowwiseRankLimit else {
                    RowwiseLowRank.forward(x: px.baseAddress!, left: pl.baseAddress!, right: pr.baseAddress!, rowGroups: rowGroups,
                                           shared: shared, groups: groupCount, inF: inF, rank: rank, outF: outF, h: ph.value, y: py.value,
                                           threads: threads)
                    return
                }
                runs.forEachRun(threads: threads) { run, inner in
                    let l = pl.baseAddress! + (shared ? 0 : run.group * inF * rank)
                    Gemm.multiply(m: run.count, n: rank, k: inF, a: px.baseAddress! + run.start * inF, rowStrideA: inF,
                                  colStrideA: 1, b: l, rowStrideB: rank, colStrideB: 1, c: ph.value + run.start * rank,
                                  ldc: rank, accumulate: false, threads: inner)
                    Gemm.multiply(m: run.count, n: outF, k: rank, a: ph.value + run.start * rank, rowStrideA: rank,
                                  colStrideA: 1, b: pr.baseAddress! + run.group * rank * outF, rowStrideB: outF,
                                  colStrideB: 1, c: py.value + run.start * outF, ldc: outF, accumulate: false, threads: inner)
                }
            } }
        } } }
        let hv = h
        return Variable.record(Tensor(y, shape: [m, outF]), [x, left, right]) { g, needs in
            let gv = g.contiguous()                                        // dY: [M, out]
            var dh = Tensor.uninitializedScalars(m * rank)                  // dH = dY (right*scale)^T: [M, R]
            var dx = needs[0] ? Tensor.uninitializedScalars(m * inF) : []   // written row by row, like y
            var dl = needs[1] ? [Float](repeating: 0, count: lv.count) : []
            var dr = needs[2] ? [Float](repeating: 0, count: rs.count) : []
            gv.withContiguousBuffer { pg in xv.withContiguousBuffer { px in lv.withContiguousBuffer { pl in
            rs.withContiguousBuffer { pr in hv.withUnsafeBufferPointer { ph in
            dh.withUnsafeMutableBufferPointer { pdh in dx.withUnsafeMutableBufferPointer { pdx in
            dl.withUnsafeMutableBufferPointer { pdl in dr.withUnsafeMutableBufferPointer { pdr in
                let out = UncheckedSendable((pdh.baseAddress!, needs[0] ? pdx.baseAddress : nil, needs[1] ? pdl.baseAddress : nil,
                                             needs[2] ? pdr.baseAddress : nil))
                let (g0, x0, l0, r0, h0) = (pg.baseAddress!, px.baseAddress!, pl.baseAddress!, pr.baseAddress!, ph.baseAddress!)
                if rowwise {
                    let (pdh, pdx, pdl, pdr) = out.value
                    RowwiseLowRank.backward(g: g0, x: x0, left: l0, right: r0, h: h0, rowGroups: rowGroups, shared: shared,
                                            inF: inF, rank: rank, outF: outF, dh: pdh, dx: pdx, dLeft: shared ? nil : pdl,
                                            dRight: pdr, needsDH: pdl != nil)
                }
                // Per group (disjoint outputs): dRight[g] += H^T dY, dH = dY right^T, dLeft[g] += X^T dH, dX = dH left^T.
                if let runs { runs.forEachGroup(threads: threads) { group, inner in
                    let (pdh, pdx, pdl, pdr) = out.value
                    for run in group {
                        let (s, c, gi) = (run.start, run.count, run.group)
                        if let pdr {
                            Gemm.multiply(m: rank, n: outF, k: c, a: h0 + s * rank, rowStrideA: 1, colStrideA: rank,
                                          b: g0 + s * outF, rowStrideB: outF, colStrideB: 1, c: pdr + gi * rank * outF,
                                          ldc: outF, accumulate: true, threads: inner)
                        }
                        guard pdx != nil || pdl != nil else { continue }
                        Gemm.multiply(m: c, n: rank, k: outF, a: g0 + s * outF, rowStrideA: outF, colStrideA: 1,
                                      b: r0 + gi * rank * outF, rowStrideB: 1, colStrideB: outF, c: pdh + s * rank,
                                      ldc: rank, accumulate: false, threads: inner)
                        let l = l0 + (shared ? 0 : gi * inF * rank)
                        if let pdl, !shared {
                            Gemm.multiply(m: inF, n: rank, k: c, a: x0 + s * inF, rowStrideA: 1, colStrideA: inF,
                                          b: pdh + s * rank, rowStrideB: rank, colStrideB: 1, c: pdl + gi * inF * rank,
                                          ldc: rank, accumulate: true, threads: inner)
                        }
                        if let pdx {
                            Gemm.multiply(m: c, n: inF, k: rank, a: pdh + s * rank, rowStrideA: rank, colStrideA: 1,
                                          b: l, rowStrideB: 1, colStrideB: rank, c: pdx + s * inF, ldc: inF,
                                          accumulate: false, threads: inner)
                        }
                    }
                } }
                // A shared left factor gets one product over all rows: dLeft = X^T dH.
                if let pdl = out.value.2, shared {
                    Gemm.multiply(m: inF, n: rank, k: m, a: x0, rowStrideA: 1, colStrideA: inF, b: out.value.0,
                                  rowStrideB: rank, colStrideB: 1, c: pdl, ldc: rank, accumulate: false, threads: threads)
                }
            } } } } } } } } }
            let drT = needs[2] ? Tensor(dr, shape: rs.shape) * scale : nil
            return [needs[0] ? Tensor(dx, shape: [m, inF]) : nil, needs[1] ? Tensor(dl, shape: lv.shape) : nil, drT]
        }
    }

    /// Short runs (on average under 8 rows, e.g. a batch of single samples of interleaved tasks, or training where
    /// every sample is its own group) go through the per-row loops of `RowwiseLowRank`: two products per run would
    /// cost more in calls than in arithmetic.
    static func prefersRowwise(runs: Int, rows: Int) -> Bool { runs * 8 > rows }

    /// Below this rank the forward always uses the per-row loops: products with 1-7 columns (`x left`) or a depth
    /// of 1-7 (`H right`) waste most of a SIMD tile.
    static let rowwiseRankLimit = 8

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

/// Maximal runs of consecutive rows sharing a group, and the runs of each group.
struct RowRuns {
    struct Run { let group: Int, start: Int, count: Int }
    let runs: [Run]
    let byGroup: [[Run]]

    /// The number of runs, without building them.
    static func count(_ rowGroups: [Int]) -> Int {
        var n = rowGroups.isEmpty ? 0 : 1
        for i in rowGroups.indices.dropFirst() where rowGroups[i] != rowGroups[i - 1] { n += 1 }
        return n
    }

    init(rowGroups: [Int], groupCount: Int) {
        var runs: [Run] = []
        var start = 0
        while start < rowGroups.count {
            var end = start + 1
            while end < rowGroups.count && rowGroups[end] == rowGroups[start] { end += 1 }
            runs.append(Run(group: rowGroups[start], start: start, count: end - start))
            start = end
        }
        var by = [[Run]](repeating: [], count: groupCount)
        for r in runs { by[r.group].append(r) }
        self.runs = runs
        byGroup = by.filter { !$0.isEmpty }
    }

    /// Calls `body(run, innerThreads)` for every run: runs shared among `threads` workers when there are at least
    /// two per worker, else one after another with the threads inside each product. Runs write disjoint rows.
    func forEachRun(threads: Int, _ body: (Run, Int) -> Void) {
        if threads > 1 && runs.count >= 2 * threads {
            Parallel.forEach(tasks: runs.count, workers: threads) { t, _ in body(runs[t], 1) }
        } else {
            for r in runs { body(r, threads) }
        }
    }

    /// Calls `body(runsOfGroup, innerThreads)` for every non-empty group, shared among workers likewise.
    func forEachGroup(threads: Int, _ body: ([Run], Int) -> Void) {
        if threads > 1 && byGroup.count >= 2 * threads {
            Parallel.forEach(tasks: byGroup.count, workers: threads) { t, _ in body(byGroup[t], 1) }
        } else {
            for g in byGroup { body(g, threads) }
        }
    }
}
