/// The skinny matrix multiply for LoRA's shapes: few columns (`n <= 16`, e.g. `x·A^T` with `[N, in]·[in, r]`, and the
/// gradient `x^T·g` with `[in, N]·[N, r]`) or few rows (`m <= 8`, e.g. `g^T·x` with `[r, N]·[N, in]`).
///
/// ```
/// for each 8-row block i0 of C and 8-column block j0 of C:
///   acc[i] = 0                                   (8 SIMD8 accumulators)
///   for p in 0..<k:
///     bv = B[p, j0..<j0+8]                       (one vector load)
///     acc[i] += A[i0 + i, p] * bv                (broadcast straight from A through its strides)
///   C[i0 + i, j0..<j0+8] (+)= acc[i]
/// ```
///
/// Tiles are 8x8, or 4x16 when m <= 8 and n > 16 (two vector loads of B per step). The big operand is streamed
/// once and never packed (packing would double the memory traffic of a product whose arithmetic intensity is only
/// `2 * r` flops per element). B is used in place when its rows are contiguous and its width a multiple of the tile
/// width; otherwise (transposed, sliced or ragged B) it is first copied into a zero-padded row-major
/// `[k, roundUp(n, tile width)]` buffer, once per call. Rows past `m` in the last block re-read row `m - 1` and are
/// not stored. Workers take tasks of row blocks (or of column blocks when C has few rows), handed out dynamically;
/// the tile, the split and the depth of a pass are chosen by `schedule` (GemmSelection.swift).
/// Sweeps in chunks of k prefetch the big operand's next tile, one line per row of the chunk
/// (`prefetchColumnBlocks`, `prefetchRowBlocks`).
enum GemmDirect {
    static let mr = 8, nr = 8
    /// How far ahead a sweep prefetches the big operand's next tile, for each row of the chunk: the 4x16 sweep the
    /// rows of B one column block (16 floats) ahead, the 8x8 sweep over A^T (`x^T·g`) the rows of A^T four row
    /// blocks (32 floats) ahead, on every other row block (one cache line covers two).
    ///
    /// The hardware prefetchers follow a chunk's 32-64 rows, each a 4 KiB page apart, only some of the time; when
    /// they do not, these requests, issued in one burst before the tiles that use the current tile, keep the sweep
    /// at the rate it has when they do. When they keep up, the requests cost `g^T·x` a few percent (BENCHMARKS.md,
    /// "Where it falls short", has both regimes and the distances tried).
    static let prefetchColumnBlocks = 1, prefetchRowBlocks = 4

    static func multiply(m: Int, n: Int, k: Int,
                         a: UnsafePointer<Float>, rsA: Int, csA: Int,
                         b: UnsafePointer<Float>, rsB: Int, csB: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, workers: Int) {
        let schedule = GemmDirect.schedule(m: m, n: n, k: k, csA: csA, workers: workers)
        let width = schedule.tileCols
        if csB == 1 && n % width == 0 {
            run(m: m, n: n, k: k, a: a, rsA: rsA, csA: csA, b: b, rsB: rsB, c: c, ldc: ldc, add: accumulate,
                schedule: schedule, workers: workers)
            return
        }
        let np = roundUp(n, width)
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: k * np)
        defer { buf.deallocate() }
        for p in 0..<k {
            let s = b + p * rsB, d = buf + p * np
            for j in 0..<n { d[j] = s[j * csB] }
            for j in n..<np { d[j] = 0 }
        }
        run(m: m, n: n, k: k, a: a, rsA: rsA, csA: csA, b: buf, rsB: np, c: c, ldc: ldc, add: accumulate,
            schedule: schedule, workers: workers)
    }

    /// B has contiguous rows (stride `rsB`) readable up to a whole tile width of columns. The tiles run over k in
    /// passes of `schedule.chunk` steps (all of k, or a chunk read in order, see `schedule`).
    static func run(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, rsA: Int, csA: Int,
                    b: UnsafePointer<Float>, rsB: Int, c: UnsafeMutablePointer<Float>, ldc: Int, add: Bool,
                    schedule: Schedule, workers: Int) {
        let wide = schedule.wide, splitRows = schedule.splitRows, chunk = schedule.chunk, parts = schedule.tasks
        let tm = schedule.tileRows, tn = schedule.tileCols
        let rowBlocks = (m + tm - 1) / tm, colBlocks = (n + tn - 1) / tn
        Parallel.forEach(tasks: parts, workers: workers) { task, _ in
            let rows = splitRows ? Parallel.part(task, of: parts, count: rowBlocks) : 0..<rowBlocks
            let cols = splitRows ? 0..<colBlocks : Parallel.part(task, of: parts, count: colBlocks)
            var p0 = 0
            while p0 < k {
                let kb = Swift.min(chunk, k - p0)
                if wide {
                    // Column blocks outside, so the chunk of a 16-wide panel of B stays in L1 for both row blocks.
                    for jb in cols {
                        if jb + prefetchColumnBlocks < cols.upperBound {
                            prefetchRows(b + p0 * rsB + (jb + prefetchColumnBlocks) * tn, count: kb, stride: rsB)
                        }
                        for ib in rows {
                            let i0 = ib * tm, j0 = jb * tn
                            kernel4x16(k: kb, a: a + i0 * rsA + p0 * csA, rsA: rsA, csA: csA, rows: Swift.min(tm, m - i0),
                                       b: b + p0 * rsB + j0, rsB: rsB, c: c + i0 * ldc + j0, ldc: ldc,
                                       cols: Swift.min(tn, n - j0), add: add || p0 > 0)
                        }
                    }
                } else {
                    for ib in rows {
                        if rsA == 1 && ib & 1 == 0 && ib + prefetchRowBlocks < rows.upperBound {
                            prefetchRows(a + (ib + prefetchRowBlocks) * tm + p0 * csA, count: kb, stride: csA)
                        }
                        for jb in cols {
                            let i0 = ib * tm, j0 = jb * tn
                            kernel8x8(k: kb, a: a + i0 * rsA + p0 * csA, rsA: rsA, csA: csA, rows: Swift.min(tm, m - i0),
                                      b: b + p0 * rsB + j0, rsB: rsB, c: c + i0 * ldc + j0, ldc: ldc,
                                      cols: Swift.min(tn, n - j0), add: add || p0 > 0)
                        }
                    }
                }
                p0 += kb
            }
        }
    }

    /// Prefetches the cache line at `p + t * stride` for `t` in `0..<count` (one line of each row of a chunk).
    @inline(__always)
    static func prefetchRows(_ p: UnsafePointer<Float>, count: Int, stride: Int) {
        for t in 0..<count { prefetch(p + t * stride) }
    }

    /// `C[0..<rows, 0..<cols] (+)= A[0..<rows, 0..<k] · B[0..<k, 0..<16]`, `rows <= 4`, `cols <= 16`.
    @inline(__always)
    static func kernel4x16(k: Int, a: UnsafePointer<Float>, rsA: Int, csA: Int, rows: Int,
                           b: UnsafePointer<Float>, rsB: Int, c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, add: Bool) {
        let last = rows - 1
        let a0 = a, a1 = a + Swift.min(1, last) * rsA, a2 = a + Swift.min(2, last) * rsA, a3 = a + Swift.min(3, last) * rsA
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var pb = b, o = 0
        for _ in 0..<k {
            let b0 = load8(pb), b1 = load8(pb + 8)
            var s = SIMD8<Float>(repeating: a0[o])
            c00 = fma8(c00, s, b0); c01 = fma8(c01, s, b1)
            s = SIMD8<Float>(repeating: a1[o])
            c10 = fma8(c10, s, b0); c11 = fma8(c11, s, b1)
            s = SIMD8<Float>(repeating: a2[o])
            c20 = fma8(c20, s, b0); c21 = fma8(c21, s, b1)
            s = SIMD8<Float>(repeating: a3[o])
            c30 = fma8(c30, s, b0); c31 = fma8(c31, s, b1)
            pb += rsB
            o &+= csA
        }
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 8) { t in
            t[0] = c00; t[1] = c01; t[2] = c10; t[3] = c11; t[4] = c20; t[5] = c21; t[6] = c30; t[7] = c31
            for i in 0..<rows {
                let dst = c + i * ldc
                if cols == 16 {
                    update8(t[2 * i], dst, add: add)
                    update8(t[2 * i + 1], dst + 8, add: add)
                } else {
                    for j in 0..<cols { dst[j] = add ? dst[j] + t[2 * i + j / 8][j % 8] : t[2 * i + j / 8][j % 8] }
                }
            }
        }
    }

    /// `C[0..<rows, 0..<cols] (+)= A[0..<rows, 0..<k] · B[0..<k, 0..<8]`, `rows <= 8`, `cols <= 8`.
    @inline(__always)
    static func kernel8x8(k: Int, a: UnsafePointer<Float>, rsA: Int, csA: Int, rows: Int,
                           b: UnsafePointer<Float>, rsB: Int, c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, add: Bool) {
        // Row pointers; rows past the end repeat the last valid row (computed, never stored).
        let last = rows - 1
        let a0 = a, a1 = a + Swift.min(1, last) * rsA, a2 = a + Swift.min(2, last) * rsA
        let a3 = a + Swift.min(3, last) * rsA, a4 = a + Swift.min(4, last) * rsA, a5 = a + Swift.min(5, last) * rsA
        let a6 = a + Swift.min(6, last) * rsA, a7 = a + Swift.min(7, last) * rsA
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
        var c4 = SIMD8<Float>(), c5 = SIMD8<Float>(), c6 = SIMD8<Float>(), c7 = SIMD8<Float>()
        var pb = b, o = 0
        for _ in 0..<k {
            let bv = load8(pb)
            c0 = fma8(c0, SIMD8(repeating: a0[o]), bv)
            c1 = fma8(c1, SIMD8(repeating: a1[o]), bv)
            c2 = fma8(c2, SIMD8(repeating: a2[o]), bv)
            c3 = fma8(c3, SIMD8(repeating: a3[o]), bv)
            c4 = fma8(c4, SIMD8(repeating: a4[o]), bv)
            c5 = fma8(c5, SIMD8(repeating: a5[o]), bv)
            c6 = fma8(c6, SIMD8(repeating: a6[o]), bv)
            c7 = fma8(c7, SIMD8(repeating: a7[o]), bv)
            pb += rsB
            o &+= csA
        }
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: mr) { t in
            t[0] = c0; t[1] = c1; t[2] = c2; t[3] = c3; t[4] = c4; t[5] = c5
            t[6] = c6; t[7] = c7
            for i in 0..<rows {
                let dst = c + i * ldc
                if cols == nr {
                    update8(t[i], dst, add: add)
                } else {
                    for j in 0..<cols { dst[j] = add ? dst[j] + t[i][j] : t[i][j] }
                }
            }
        }
    }
}
