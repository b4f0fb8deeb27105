#if arch(x86_64)
import PolyPEFTAVX512
#endif

/// The general matrix multiply: GotoBLAS-style cache blocking with packed panels and a 6x16 register tile (on CPUs
/// with AVX-512, a 12x32 tile of 16-lane vectors: `Tile.wide`, the kernels in PolyPEFTAVX512's `WideGemm`; the
/// blocking below is the same with the tile's sizes).
///
/// ```
/// for jc in 0..<n by nc                     B block [kc, nc] packed once per (jc, pc), shared by all workers (L3)
///   for pc in 0..<k by kc                   kc = depthBlock(k): k in equal blocks of at most 384
///     pack B[pc..., jc...] into 16-column panels: bp[panel][p][0..<16]
///     for ic in 0..<m by ~mc  (per worker)  A block [<= mc, kc] packed per worker (L2), blocks of near-equal size
///       pack A[ic..., pc...] into 6-row panels: ap[panel][p][0..<6]
///       for jr in panels of 16, ir in panels of 6:
///         C[ir..+6, jr..+16] (+)= ap[ir] · bp[jr]      12 SIMD8 accumulators, kc rank-1 updates
/// ```
///
/// Packing reads A and B through their strides (transposes and slices are never copied first) and zero-pads the
/// last panels, so the micro-kernel always runs a full 6x16 tile; edge tiles are written through a small buffer.
/// The packed blocks live in one page-aligned workspace with a fixed layout (`workspaceLayout`), taken from
/// `GemmWorkspace`'s cache (one A block per worker). Workers take tasks of whole panels of rows
/// of C (or of columns when C is wide and short), so they write disjoint tiles. The depth blocks, the split and the
/// task count are chosen in GemmSelection.swift (`depthBlock`, `splitsRows`, `taskCount`).
///
/// The micro-kernel prefetches (`prefetcht0`) the 6 rows of its C tile before its loop, so the read-modify-write of
/// C at the end (C is far larger than the caches at 2048^2) does not wait for memory, and A and B a fixed distance
/// ahead of the loads (BENCHMARKS.md, run G, measures what each prefetch brings).
///
/// Emitted code (checked with `objdump -d --no-show-raw-insn .build/release/PolyPEFTCore.build/GemmPacked.swift.o`):
/// the inner loop is two `prefetcht0`, 2 `vmovups`, 6 `vbroadcastss` and 12 `vfmadd231ps ymm`, with the 12
/// accumulators held in ymm registers (no spills).
enum GemmPacked {
    static let mr = 6, nr = 16
    static let mc = 120, nc = 4080
    /// Prefetch distances of the micro-kernel, in floats: 32 steps ahead in A (6 floats a step), 16 in B (16 a step).
    static let prefetchA = 192, prefetchB = 256

    /// The blocking of one kernel: its register tile `mr x nr`, the rows of an A block `mc`, the columns of a B block
    /// `nc` and the deepest block of k `kcMax`.
    struct Tile: Equatable {
        let mr: Int, nr: Int, mc: Int, nc: Int, kcMax: Int
        /// Runs `WideGemm`'s 12x32 kernel (AVX-512) instead of this type's 6x16 one.
        let wide: Bool

        /// The 6x16 tile of 8-lane vectors (every build).
        static let base = Tile(mr: GemmPacked.mr, nr: GemmPacked.nr, mc: GemmPacked.mc, nc: GemmPacked.nc,
                               kcMax: GemmPacked.kcMax, wide: false)
        /// The 12x32 tile of 16-lane vectors: its B micro-panel (`kc x 32` floats, 32 KiB at 256) stays in L1 beside
        /// the A micro-panel (12 KiB), as the base tile's does at 384 (BENCHMARKS.md, "Issue 21, first round").
        static let wide = Tile(mr: 12, nr: 32, mc: 240, nc: 4096, kcMax: 256, wide: true)

        /// The tile for a `SIMDLevel` (never above the CPU's: `SIMDLevel.current` is capped by `detected`).
        static func `for`(_ level: SIMDLevel) -> Tile {
            #if arch(x86_64)
            return level == .avx512 && SIMDLevel.detected == .avx512 ? .wide : .base
            #else
            return .base
            #endif
        }
    }

    static func multiply(m: Int, n: Int, k: Int,
                         a: UnsafePointer<Float>, rsA: Int, csA: Int,
                         b: UnsafePointer<Float>, rsB: Int, csB: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, workers: Int,
                         tail: GemmRowTail? = nil, tile: Tile = .for(.current)) {
        let (mr, nr, mc, nc) = (tile.mr, tile.nr, tile.mc, tile.nc)
        let kc = depthBlock(k, max: tile.kcMax)
        let ncMax = Swift.min(nc, roundUp(n, nr))
        let mcMax = Swift.min(mc, roundUp(m, mr))
        // One page-aligned workspace with a fixed layout, so the packed blocks sit at the same relative addresses in
        // every call and every process (see `workspaceLayout`):
        // bBuf: [ncMax / nr][kc][nr], shared; aBufs: workers x [mcMax / mr][kc][mr], one per worker, page-aligned.
        let (aOffset, aStride, total) = workspaceLayout(bCount: kc * ncMax, aCount: kc * mcMax, workers: workers)
        GemmWorkspace.shared.withFloats(total) { workspace in
            let bBuf = workspace, aBufs = workspace + aOffset
            var jc = 0
            while jc < n {
                let nb = Swift.min(nc, n - jc)
                let bPanels = (nb + nr - 1) / nr
                var pc = 0
                while pc < k {
                    let kb = Swift.min(kc, k - pc)
                    let add = accumulate || pc > 0
                    let tailNow = pc + kb == k ? tail : nil      // the row tail joins the tiles' last block of depth
                    let bBlock = b + pc * rsB + jc * csB
                    let packers = packingWorkers(panels: bPanels, workers: workers)
                    Parallel.run(workers: packers) { w in
                        for q in Parallel.part(w, of: packers, count: bPanels) {
                            packB(bBlock + q * nr * csB, rs: rsB, cs: csB, depth: kb, cols: Swift.min(nr, nb - q * nr),
                                  into: bBuf + q * kb * nr, nr: nr)
                        }
                    }
                    let aBlock = a + pc * csA
                    // Tasks of whole panels (of rows, or of columns when C is wide and short), handed out dynamically.
                    let mPanels = (m + mr - 1) / mr
                    let splitRows = splitsRows(rowPanels: mPanels, columnPanels: bPanels, workers: workers)
                    let units = splitRows ? mPanels : bPanels
                    let tasks = taskCount(units: units, workers: workers, tile: tile)
                    Parallel.forEach(tasks: tasks, workers: workers) { task, w in
                        let aBuf = aBufs + w * aStride
                        let rows = splitRows ? Parallel.part(task, of: tasks, count: mPanels) : 0..<mPanels
                        let cols = splitRows ? 0..<bPanels : Parallel.part(task, of: tasks, count: bPanels)
                        // A blocks of near-equal size (2048 rows: 18 of 114, not 17 of 120 and one of 8): each block
                        // streams all of the packed B block through the cache, however few rows it has.
                        let blocks = (rows.count + mc / mr - 1) / (mc / mr)
                        for blk in 0..<blocks {
                            let panelsOfBlock = Parallel.part(blk, of: blocks, count: rows.count)
                            let ic = (rows.lowerBound + panelsOfBlock.lowerBound) * mr
                            let ib = Swift.min(m, (rows.lowerBound + panelsOfBlock.upperBound) * mr) - ic
                            packA(aBlock + ic * rsA, rs: rsA, cs: csA, rows: ib, depth: kb, into: aBuf, mr: mr)
                            macroKernel(rows: ib, depth: kb, aPack: aBuf, bPack: bBuf, panels: cols, cols: nb,
                                        c: c + ic * ldc + jc, ldc: ldc, add: add, tail: tailNow?.rowOffset(ic),
                                        tailCol: jc, tile: tile)
                        }
                    }
                    pc += kb
                }
                jc += nb
            }
        }
    }

    /// `macroKernel` of the tile's kernel.
    @inline(__always)
    static func macroKernel(rows: Int, depth: Int, aPack: UnsafePointer<Float>, bPack: UnsafePointer<Float>,
                            panels: Range<Int>, cols: Int, c: UnsafeMutablePointer<Float>, ldc: Int, add: Bool,
                            tail: GemmRowTail?, tailCol: Int, tile: Tile) {
        #if arch(x86_64)
        if tile.wide {
            let wideTail = tail.map {
                WideRowTail(h: $0.h, rank: $0.rank, factors: $0.factors, ldf: $0.ldf, groupStride: $0.groupStride,
                            groupOfRow: $0.groupOfRow)
            }
            return WideGemm.macroKernel(rows: rows, depth: depth, aPack: aPack, bPack: bPack, panels: panels,
                                        cols: cols, c: c, ldc: ldc, add: add, tail: wideTail, tailCol: tailCol)
        }
        #endif
        macroKernel(rows: rows, depth: depth, aPack: aPack, bPack: bPack, panels: panels, cols: cols, c: c, ldc: ldc,
                    add: add, tail: tail, tailCol: tailCol)
    }

    /// Where the packed blocks go in the workspace, in floats: B's block at 0, then each worker's A block, each
    /// starting on a page of its own: `(aOffset, aStride, total)`.
    ///
    /// The placement of the packed blocks matters, and this fixes it. As two `malloc` blocks (64-byte aligned), their
    /// addresses would follow the heap's history, which depends on everything the process allocated before, even on
    /// the length of its environment, and some histories run the whole product markedly slower for a reason not
    /// pinned down. With this layout no environment length and no page offset of A, B or C is known to be slow
    /// (BENCHMARKS.md, run I, "The relative placement of the packed blocks").
    static func workspaceLayout(bCount: Int, aCount: Int, workers: Int) -> (aOffset: Int, aStride: Int, total: Int) {
        let page = GemmWorkspace.pageBytes / 4
        let aOffset = roundUp(bCount, page), aStride = roundUp(aCount, page)
        return (aOffset, aStride, aOffset + aStride * workers)
    }

    /// C block `[rows, cols]` (+)= packed A `[rows, depth]` · packed B panels `panels` of `[depth, cols]`, plus the
    /// row tail (its rows aligned with the block's, its column `tailCol` at the block's first).
    @inline(__always)
    static func macroKernel(rows: Int, depth: Int, aPack: UnsafePointer<Float>, bPack: UnsafePointer<Float>,
                            panels: Range<Int>, cols: Int, c: UnsafeMutablePointer<Float>, ldc: Int, add: Bool,
                            tail: GemmRowTail? = nil, tailCol: Int = 0) {
        for q in panels {
            let j = q * nr
            let nrValid = Swift.min(nr, cols - j)
            var i = 0
            while i < rows {
                micro6x16(depth, aPack + i * depth, bPack + q * depth * nr, c + i * ldc + j, ldc,
                          rows: Swift.min(mr, rows - i), cols: nrValid, add: add, tail: tail?.rowOffset(i), tailCol: tailCol + j)
                i += mr
            }
        }
    }

    /// The register tile: `C[0..<6, 0..<16] (+)= sum_p a[p*6 + i] * b[p*16 + j]`, valid part `rows x cols`, plus
    /// the row tail's `sum_t h[i, t] F[g(i)][t, tailCol + j]` (added to the registers when all 16 columns are valid,
    /// through the edge buffer otherwise, so no factor is read past its row).
    @inline(__always)
    static func micro6x16(_ depth: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, cols: Int, add: Bool,
                          tail: GemmRowTail? = nil, tailCol: Int = 0) {
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>(), c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        // Software prefetches (see the type's comment): the tile of C, needed after the loop, and A and B a few
        // steps ahead.
        for i in 0..<rows { prefetch(c + i * ldc); prefetch(c + i * ldc + nr - 1) }
        var pa = a, pb = b
        for _ in 0..<depth {
            prefetch(pa + prefetchA); prefetch(pb + prefetchB)
            let b0 = load8(pb), b1 = load8(pb + 8)
            var s = SIMD8<Float>(repeating: pa[0])
            c00 = fma8(c00, s, b0); c01 = fma8(c01, s, b1)
            s = SIMD8<Float>(repeating: pa[1])
            c10 = fma8(c10, s, b0); c11 = fma8(c11, s, b1)
            s = SIMD8<Float>(repeating: pa[2])
            c20 = fma8(c20, s, b0); c21 = fma8(c21, s, b1)
            s = SIMD8<Float>(repeating: pa[3])
            c30 = fma8(c30, s, b0); c31 = fma8(c31, s, b1)
            s = SIMD8<Float>(repeating: pa[4])
            c40 = fma8(c40, s, b0); c41 = fma8(c41, s, b1)
            s = SIMD8<Float>(repeating: pa[5])
            c50 = fma8(c50, s, b0); c51 = fma8(c51, s, b1)
            pa += mr
            pb += nr
        }
        if let tail, cols == nr, rows == mr, tail.sameGroup(rows: mr) {
            // Six rows of one group (the usual case: a sequence's tokens share a task): `rank` more steps of the
            // loop above, with h as A and the group's factor rows as B.
            let f = tail.factor(row: 0, col: tailCol), h = tail.h, rk = tail.rank
            for t in 0..<rk {
                let b0 = load8(f + t * tail.ldf), b1 = load8(f + t * tail.ldf + 8)
                var s = SIMD8<Float>(repeating: h[t])
                c00 = fma8(c00, s, b0); c01 = fma8(c01, s, b1)
                s = SIMD8<Float>(repeating: h[rk + t])
                c10 = fma8(c10, s, b0); c11 = fma8(c11, s, b1)
                s = SIMD8<Float>(repeating: h[2 * rk + t])
                c20 = fma8(c20, s, b0); c21 = fma8(c21, s, b1)
                s = SIMD8<Float>(repeating: h[3 * rk + t])
                c30 = fma8(c30, s, b0); c31 = fma8(c31, s, b1)
                s = SIMD8<Float>(repeating: h[4 * rk + t])
                c40 = fma8(c40, s, b0); c41 = fma8(c41, s, b1)
                s = SIMD8<Float>(repeating: h[5 * rk + t])
                c50 = fma8(c50, s, b0); c51 = fma8(c51, s, b1)
            }
        } else if let tail, cols == nr {
            tail.add(row: 0, col: tailCol, &c00, &c01)
            if rows > 1 { tail.add(row: 1, col: tailCol, &c10, &c11) }
            if rows > 2 { tail.add(row: 2, col: tailCol, &c20, &c21) }
            if rows > 3 { tail.add(row: 3, col: tailCol, &c30, &c31) }
            if rows > 4 { tail.add(row: 4, col: tailCol, &c40, &c41) }
            if rows > 5 { tail.add(row: 5, col: tailCol, &c50, &c51) }
        }
        if rows == mr && cols == nr {
            update8(c00, c, add: add); update8(c01, c + 8, add: add)
            update8(c10, c + ldc, add: add); update8(c11, c + ldc + 8, add: add)
            update8(c20, c + 2 * ldc, add: add); update8(c21, c + 2 * ldc + 8, add: add)
            update8(c30, c + 3 * ldc, add: add); update8(c31, c + 3 * ldc + 8, add: add)
            update8(c40, c + 4 * ldc, add: add); update8(c41, c + 4 * ldc + 8, add: add)
            update8(c50, c + 5 * ldc, add: add); update8(c51, c + 5 * ldc + 8, add: add)
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { t in
            let p = t.baseAddress!
            store8(c00, p); store8(c01, p + 8); store8(c10, p + 16); store8(c11, p + 24)
            store8(c20, p + 32); store8(c21, p + 40); store8(c30, p + 48); store8(c31, p + 56)
            store8(c40, p + 64); store8(c41, p + 72); store8(c50, p + 80); store8(c51, p + 88)
            if let tail, cols < nr { tail.columnOffset(tailCol).apply(rows: 0..<rows, cols: 0..<cols, c: p, ldc: nr) }
            for i in 0..<rows {
                for j in 0..<cols { c[i * ldc + j] = add ? c[i * ldc + j] + p[i * nr + j] : p[i * nr + j] }
            }
        }
    }

    /// Packs A `[rows, depth]` (strides `rs`, `cs`) into `mr`-row panels `dst[panel][p][0..<mr]` (6 for the base
    /// tile, 12 for the wide one), zero-padding the last. Packing is a copy: 8-lane vectors serve both tiles.
    static func packA(_ a: UnsafePointer<Float>, rs: Int, cs: Int, rows: Int, depth: Int, into dst: UnsafeMutablePointer<Float>,
                      mr: Int = GemmPacked.mr) {
        var i = 0, d = dst
        while i < rows {
            let r = Swift.min(mr, rows - i)
            let src = a + i * rs
            if r == mr && cs == 1 && mr == 6 {
                packSixRows(src, rs: rs, depth: depth, into: d)
            } else if r == mr && cs == 1 && mr == 12 {
                packTwelveRows(src, rs: rs, depth: depth, into: d)
            } else {
                // Transposed (rs == 1: mr neighbours per p), sliced or edge panel.
                for p in 0..<depth {
                    let s = src + p * cs, o = p * mr
                    for ii in 0..<r { d[o + ii] = s[ii * rs] }
                    for ii in r..<mr { d[o + ii] = 0 }
                }
            }
            d += mr * depth
            i += mr
        }
    }

    /// One 6-row panel of row-major A: six rows read along p, eight steps at a time as a 6x8 transpose in registers
    /// (six vector loads and six vector stores instead of 48 scalar pairs: about twice as fast), then the rest.
    @inline(__always)
    static func packSixRows(_ src: UnsafePointer<Float>, rs: Int, depth: Int, into d: UnsafeMutablePointer<Float>) {
        let s0 = src, s1 = src + rs, s2 = src + 2 * rs, s3 = src + 3 * rs, s4 = src + 4 * rs, s5 = src + 5 * rs
        var p = 0
        while p + 8 <= depth {
            let r0 = load8(s0 + p), r1 = load8(s1 + p), r2 = load8(s2 + p)       // r_i: row i's A[i, p..<p+8]
            let r3 = load8(s3 + p), r4 = load8(s4 + p), r5 = load8(s5 + p)
            let o = d + p * 6                                                        // o: [8][6]
            store8(SIMD8(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0], r0[1], r1[1]), o)
            store8(SIMD8(r2[1], r3[1], r4[1], r5[1], r0[2], r1[2], r2[2], r3[2]), o + 8)
            store8(SIMD8(r4[2], r5[2], r0[3], r1[3], r2[3], r3[3], r4[3], r5[3]), o + 16)
            store8(SIMD8(r0[4], r1[4], r2[4], r3[4], r4[4], r5[4], r0[5], r1[5]), o + 24)
            store8(SIMD8(r2[5], r3[5], r4[5], r5[5], r0[6], r1[6], r2[6], r3[6]), o + 32)
            store8(SIMD8(r4[6], r5[6], r0[7], r1[7], r2[7], r3[7], r4[7], r5[7]), o + 40)
            p += 8
        }
        while p < depth {
            let o = p * 6
            d[o] = s0[p]; d[o + 1] = s1[p]; d[o + 2] = s2[p]; d[o + 3] = s3[p]; d[o + 4] = s4[p]; d[o + 5] = s5[p]
            p += 1
        }
    }

    /// One 12-row panel of row-major A (the wide tile's): a 12x8 block read as twelve vectors (r_i: A[i, p..<p+8]) and
    /// written out transposed as twelve vectors (o: [8][12], two steps of p per three vectors), then the rest.
    @inline(__always)
    static func packTwelveRows(_ src: UnsafePointer<Float>, rs: Int, depth: Int, into d: UnsafeMutablePointer<Float>) {
        let s0 = src, s1 = src + rs, s2 = src + 2 * rs, s3 = src + 3 * rs, s4 = src + 4 * rs, s5 = src + 5 * rs
        let s6 = src + 6 * rs, s7 = src + 7 * rs, s8 = src + 8 * rs, s9 = src + 9 * rs, s10 = src + 10 * rs
        let s11 = src + 11 * rs
        var p = 0
        while p + 8 <= depth {
            let r0 = load8(s0 + p), r1 = load8(s1 + p), r2 = load8(s2 + p), r3 = load8(s3 + p)
            let r4 = load8(s4 + p), r5 = load8(s5 + p), r6 = load8(s6 + p), r7 = load8(s7 + p)
            let r8 = load8(s8 + p), r9 = load8(s9 + p), r10 = load8(s10 + p), r11 = load8(s11 + p)
            let o = d + p * 12
            store8(SIMD8(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0], r6[0], r7[0]), o + 0)
            store8(SIMD8(r8[0], r9[0], r10[0], r11[0], r0[1], r1[1], r2[1], r3[1]), o + 8)
            store8(SIMD8(r4[1], r5[1], r6[1], r7[1], r8[1], r9[1], r10[1], r11[1]), o + 16)
            store8(SIMD8(r0[2], r1[2], r2[2], r3[2], r4[2], r5[2], r6[2], r7[2]), o + 24)
            store8(SIMD8(r8[2], r9[2], r10[2], r11[2], r0[3], r1[3], r2[3], r3[3]), o + 32)
            store8(SIMD8(r4[3], r5[3], r6[3], r7[3], r8[3], r9[3], r10[3], r11[3]), o + 40)
            store8(SIMD8(r0[4], r1[4], r2[4], r3[4], r4[4], r5[4], r6[4], r7[4]), o + 48)
            store8(SIMD8(r8[4], r9[4], r10[4], r11[4], r0[5], r1[5], r2[5], r3[5]), o + 56)
            store8(SIMD8(r4[5], r5[5], r6[5], r7[5], r8[5], r9[5], r10[5], r11[5]), o + 64)
            store8(SIMD8(r0[6], r1[6], r2[6], r3[6], r4[6], r5[6], r6[6], r7[6]), o + 72)
            store8(SIMD8(r8[6], r9[6], r10[6], r11[6], r0[7], r1[7], r2[7], r3[7]), o + 80)
            store8(SIMD8(r4[7], r5[7], r6[7], r7[7], r8[7], r9[7], r10[7], r11[7]), o + 88)
            p += 8
        }
        while p < depth {
            for ii in 0..<12 { d[p * 12 + ii] = src[ii * rs + p] }
            p += 1
        }
    }

    /// Packs B `[depth, cols]` (strides `rs`, `cs`, `cols <= nr`) into one panel `dst[p][0..<nr]`, zero-padded
    /// (`nr`: 16 for the base tile, 32 for the wide one, a multiple of 8).
    static func packB(_ b: UnsafePointer<Float>, rs: Int, cs: Int, depth: Int, cols: Int, into dst: UnsafeMutablePointer<Float>,
                      nr: Int = GemmPacked.nr) {
        if cols == nr && cs == 1 {
            for p in 0..<depth {
                let s = b + p * rs, o = dst + p * nr
                for j in stride(from: 0, to: nr, by: 8) { store8(load8(s + j), o + j) }
            }
        } else if rs == 1 {
            // Transposed B (a linear layer's weight): each column is contiguous along p.
            for j in 0..<nr {
                if j < cols {
                    let s = b + j * cs
                    for p in 0..<depth { dst[p * nr + j] = s[p] }
                } else {
                    for p in 0..<depth { dst[p * nr + j] = 0 }
                }
            }
        } else {
            for p in 0..<depth {
                let s = b + p * rs
                for j in 0..<cols { dst[p * nr + j] = s[j * cs] }
                for j in cols..<nr { dst[p * nr + j] = 0 }
            }
        }
    }
}
