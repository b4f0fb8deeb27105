#if arch(x86_64)
/// The packed matrix multiply's inner kernels for CPUs with AVX-512 (x86-64-v4: Skylake-SP and later Xeons, Ice Lake,
/// Zen 4): the same GotoBLAS scheme as `GemmPacked` in PolyPEFTCore, with a 12x32 register tile of 16-lane vectors.
///
/// ```
/// C[ir..+12, jr..+32] (+)= ap[ir] · bp[jr]        24 SIMD16 accumulators (zmm), kc rank-1 updates:
///   per step: 2 loads of B (32 floats), 12 broadcasts of A (folded into the FMAs as {1to16}), 24 FMAs
/// packed A: [panel][p][0..<12],  packed B: [panel][p][0..<32], both zero-padded to whole panels
/// ```
///
/// This module alone is compiled for x86-64-v4 (Package.swift), so every function in it may contain AVX-512
/// instructions: PolyPEFTCore calls it only after `SIMDLevel` has found AVX-512 on the running CPU. It holds the
/// register tile and nothing else: packing is a copy that 8-lane vectors do as well (`GemmPacked.packA` / `packB`
/// with the wide tile's `mr` and `nr`), and the row tail's type is mirrored (`WideRowTail`) because this module
/// cannot import the one above it; whatever it shared with PolyPEFTCore would run AVX-512 instructions there. Its
/// entry point is `@inline(never)` and the module is built without cross-module optimisation, so none of its code
/// is inlined into a module compiled for the AVX2 baseline (where it would lose its width).
/// The driver (blocking, threads, workspace, the choice of kernel) stays in PolyPEFTCore; the naive oracle is
/// `Gemm.reference` there.
public enum WideGemm {
    public static let mr = 12, nr = 32
    /// Prefetch distances of the micro-kernel, in floats: 16 steps ahead in A (12 floats a step), 8 in B (32 a step).
    static let prefetchA = 192, prefetchB = 256

    /// C block `[rows, cols]` (+)= packed A `[rows, depth]` · packed B panels `panels` of `[depth, cols]` (32 columns
    /// each), plus the row tail (its rows aligned with the block's, its column `tailCol` at the block's first).
    @inline(never)
    public static func macroKernel(rows: Int, depth: Int, aPack: UnsafePointer<Float>, bPack: UnsafePointer<Float>,
                                   panels: Range<Int>, cols: Int, c: UnsafeMutablePointer<Float>, ldc: Int, add: Bool,
                                   tail: WideRowTail?, tailCol: Int) {
        for q in panels {
            let j = q * nr
            let nrValid = Swift.min(nr, cols - j)
            var i = 0
            while i < rows {
                micro12x32(depth, aPack + i * depth, bPack + q * depth * nr, c + i * ldc + j, ldc,
                           rows: Swift.min(mr, rows - i), cols: nrValid, add: add, tail: tail?.rowOffset(i),
                           tailCol: tailCol + j)
                i += mr
            }
        }
    }

    /// The register tile: `C[0..<12, 0..<32] (+)= sum_p a[p*12 + i] * b[p*32 + j]`, valid part `rows x cols`, plus
    /// the row tail's `sum_t h[i, t] F[g(i)][t, tailCol + j]`: `rank` more steps of the loop when the twelve rows
    /// read one factor and all 32 columns are valid, through the edge buffer otherwise.
    @inline(__always)
    static func micro12x32(_ depth: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, cols: Int, add: Bool,
                           tail: WideRowTail?, tailCol: Int) {
        var acc = Accumulators()
        for i in 0..<rows { prefetch(c + i * ldc); prefetch(c + i * ldc + nr - 1) }
        var pa = a, pb = b
        for _ in 0..<depth {
            prefetch(pa + prefetchA); prefetch(pb + prefetchB)
            acc.step(pa, aRow: 1, pb)
            pa += mr
            pb += nr
        }
        var tailDone = tail == nil
        if let tail, cols == nr, rows == mr, tail.sameGroup(rows: mr) {
            // Twelve rows of one group (a sequence's tokens share a task): `rank` more steps, with h as A (row
            // stride rank) and the group's factor rows as B.
            let f = tail.factor(row: 0, col: tailCol)
            for t in 0..<tail.rank { acc.step(tail.h + t, aRow: tail.rank, f + t * tail.ldf) }
            tailDone = true
        }
        if rows == mr && cols == nr && tailDone {
            acc.store(c, ldc, add)
            return
        }
        // Edge tiles and tiles whose rows read different factors: through a buffer, the tail added row by row.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { t in
            let p = t.baseAddress!
            acc.store(p, nr, false)
            if let tail, !tailDone {
                for i in 0..<rows {
                    let hr = tail.h + i * tail.rank, f = tail.factor(row: i, col: tailCol)
                    for t in 0..<tail.rank {
                        let w = hr[t], fr = f + t * tail.ldf
                        for j in 0..<cols { p[i * nr + j] += w * fr[j] }
                    }
                }
            }
            for i in 0..<rows {
                for j in 0..<cols { c[i * ldc + j] = add ? c[i * ldc + j] + p[i * nr + j] : p[i * nr + j] }
            }
        }
    }

    /// The 24 accumulators of a 12x32 tile (held in zmm registers once inlined).
    struct Accumulators {
        var c0a = SIMD16<Float>(), c0b = SIMD16<Float>(), c1a = SIMD16<Float>(), c1b = SIMD16<Float>()
        var c2a = SIMD16<Float>(), c2b = SIMD16<Float>(), c3a = SIMD16<Float>(), c3b = SIMD16<Float>()
        var c4a = SIMD16<Float>(), c4b = SIMD16<Float>(), c5a = SIMD16<Float>(), c5b = SIMD16<Float>()
        var c6a = SIMD16<Float>(), c6b = SIMD16<Float>(), c7a = SIMD16<Float>(), c7b = SIMD16<Float>()
        var c8a = SIMD16<Float>(), c8b = SIMD16<Float>(), c9a = SIMD16<Float>(), c9b = SIMD16<Float>()
        var cAa = SIMD16<Float>(), cAb = SIMD16<Float>(), cBa = SIMD16<Float>(), cBb = SIMD16<Float>()

        /// One rank-1 update: row i of the tile += `pa[i * aRow]` * B's 32 values at `pb`.
        @inline(__always)
        mutating func step(_ pa: UnsafePointer<Float>, aRow: Int, _ pb: UnsafePointer<Float>) {
            let b0 = load16(pb), b1 = load16(pb + 16)
            var s = SIMD16<Float>(repeating: pa[0])
            c0a.addProduct(s, b0); c0b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[aRow])
            c1a.addProduct(s, b0); c1b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[2 * aRow])
            c2a.addProduct(s, b0); c2b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[3 * aRow])
            c3a.addProduct(s, b0); c3b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[4 * aRow])
            c4a.addProduct(s, b0); c4b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[5 * aRow])
            c5a.addProduct(s, b0); c5b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[6 * aRow])
            c6a.addProduct(s, b0); c6b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[7 * aRow])
            c7a.addProduct(s, b0); c7b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[8 * aRow])
            c8a.addProduct(s, b0); c8b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[9 * aRow])
            c9a.addProduct(s, b0); c9b.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[10 * aRow])
            cAa.addProduct(s, b0); cAb.addProduct(s, b1)
            s = SIMD16<Float>(repeating: pa[11 * aRow])
            cBa.addProduct(s, b0); cBb.addProduct(s, b1)
        }

        /// Stores the tile's 12 rows of 32 at `c` (row stride `ldc`), or adds them to what is there.
        @inline(__always)
        func store(_ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool) {
            update16(c0a, c, add); update16(c0b, c + 16, add)
            update16(c1a, c + ldc, add); update16(c1b, c + ldc + 16, add)
            update16(c2a, c + 2 * ldc, add); update16(c2b, c + 2 * ldc + 16, add)
            update16(c3a, c + 3 * ldc, add); update16(c3b, c + 3 * ldc + 16, add)
            update16(c4a, c + 4 * ldc, add); update16(c4b, c + 4 * ldc + 16, add)
            update16(c5a, c + 5 * ldc, add); update16(c5b, c + 5 * ldc + 16, add)
            update16(c6a, c + 6 * ldc, add); update16(c6b, c + 6 * ldc + 16, add)
            update16(c7a, c + 7 * ldc, add); update16(c7b, c + 7 * ldc + 16, add)
            update16(c8a, c + 8 * ldc, add); update16(c8b, c + 8 * ldc + 16, add)
            update16(c9a, c + 9 * ldc, add); update16(c9b, c + 9 * ldc + 16, add)
            update16(cAa, c + 10 * ldc, add); update16(cAb, c + 10 * ldc + 16, add)
            update16(cBa, c + 11 * ldc, add); update16(cBb, c + 11 * ldc + 16, add)
        }
    }
}

/// `GemmRowTail` of PolyPEFTCore as this module sees it (it cannot import the module above it):
///
/// ```
/// C[i, j] += sum_t h[i, t] * F[g(i)][t, j]      h[i, t] = h[i * rank + t],  F[g][t, j] = factors[g * groupStride + t * ldf + j]
/// ```
public struct WideRowTail {
    public let h: UnsafePointer<Float>
    public let rank: Int
    public let factors: UnsafePointer<Float>
    public let ldf: Int
    public let groupStride: Int
    /// The factor each row reads; nil when every row reads group 0.
    public let groupOfRow: UnsafePointer<Int>?

    public init(h: UnsafePointer<Float>, rank: Int, factors: UnsafePointer<Float>, ldf: Int, groupStride: Int,
                groupOfRow: UnsafePointer<Int>?) {
        self.h = h
        self.rank = rank
        self.factors = factors
        self.ldf = ldf
        self.groupStride = groupStride
        self.groupOfRow = groupOfRow
    }

    @inline(__always)
    func factor(row: Int, col: Int) -> UnsafePointer<Float> {
        factors + (groupOfRow.map { $0[row] } ?? 0) * groupStride + col
    }

    @inline(__always)
    func sameGroup(rows: Int) -> Bool {
        guard let g = groupOfRow else { return true }
        for i in 1..<rows where g[i] != g[0] { return false }
        return true
    }

    @inline(__always)
    func rowOffset(_ r0: Int) -> WideRowTail {
        WideRowTail(h: h + r0 * rank, rank: rank, factors: factors, ldf: ldf, groupStride: groupStride,
                    groupOfRow: groupOfRow.map { $0 + r0 })
    }
}

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

@inline(__always)
func update16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ add: Bool) {
    store16(add ? load16(p) + v : v, p)
}

/// `prefetcht0` through LLVM's intrinsic, as in PolyPEFTCore.
@_silgen_name("llvm.prefetch.p0")
func llvmPrefetch(_ address: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ dataCache: Int32)

@inline(__always)
func prefetch(_ p: UnsafePointer<Float>) { llvmPrefetch(UnsafeRawPointer(p), 0, 3, 1) }

@inline(__always)
func prefetch(_ p: UnsafeMutablePointer<Float>) { llvmPrefetch(UnsafeRawPointer(p), 0, 3, 1) }
#endif
