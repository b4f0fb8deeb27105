import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The per-row low-rank tail that a product adds as it stores C, on every kernel behind `Gemm.multiply`, against
/// the reference product followed by the reference tail.
final class GemmRowTailTests: XCTestCase {
    /// Shapes: packed with edge tiles and two blocks of depth (13 x 37 x 500); direct with few rows
    /// (7 x 40) and with few columns (33 x 9); no depth at all (20 x 33 x 0); packed rows split among two threads
    /// (241 x 50 x 300); a single full tile (6 x 16 x 1). Ranks 1, 3, 8 and 9; one shared factor or three routed
    /// ones; factor rows padded (ldf > n) and C's too (ldc > n), whose padding must stay untouched. Each at every
    /// SIMD level the CPU has (a single full tile of the wide kernel: 12 x 32 x 3; several: 50 x 70 x 9).
    func testTailMatchesReferenceOnEveryKernel() {
        let shapes = [(13, 37, 500), (7, 40, 20), (33, 9, 50), (20, 33, 0), (241, 50, 300), (6, 16, 1), (12, 32, 3), (50, 70, 9)]
        for (m, n, k) in shapes { for rank in [1, 3, 8, 9] { for routed in [false, true] { for threads in [1, 2] {
            let a = randomTensor([m, k], seed: 1).scalars, b = randomTensor([k, n], seed: 2).scalars
            let h = randomTensor([m, rank], seed: 3).scalars
            let ldf = n + 5, groups = routed ? 3 : 1
            let f = randomTensor([groups, rank, ldf], seed: 4).scalars
            let rowGroups = (0..<m).map { routed ? ($0 * 7 / 5) % 3 : 0 }
            let ldc = n + 3
            let c0 = randomTensor([m, ldc], seed: 5).scalars
            for accumulate in [false, true] {
              forEachSIMDLevel { level in
                var fast = c0, slow = c0
                h.withUnsafeBufferPointer { ph in f.withUnsafeBufferPointer { pf in rowGroups.withUnsafeBufferPointer { pg in
                    let tail = GemmRowTail(h: ph.baseAddress!, rank: rank, factors: pf.baseAddress!, ldf: ldf,
                                           groupStride: rank * ldf, groupOfRow: routed ? pg.baseAddress : nil)
                    fast.withUnsafeMutableBufferPointer { c in
                        Gemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: k, colStrideA: 1, b: b, rowStrideB: n, colStrideB: 1,
                                      c: c.baseAddress!, ldc: ldc, accumulate: accumulate, threads: threads, tail: tail)
                    }
                    slow.withUnsafeMutableBufferPointer { c in
                        Gemm.reference(m: m, n: n, k: k, a: a, rowStrideA: k, colStrideA: 1, b: b, rowStrideB: n, colStrideB: 1,
                                       c: c.baseAddress!, ldc: ldc, accumulate: accumulate)
                        tail.reference(m: m, n: n, c: c.baseAddress!, ldc: ldc)
                    }
                } } }
                let what = "m=\(m) n=\(n) k=\(k) rank=\(rank) routed=\(routed) threads=\(threads) accumulate=\(accumulate) \(level)"
                for i in 0..<m { for j in 0..<ldc {
                    if j >= n { XCTAssertEqual(fast[i * ldc + j], c0[i * ldc + j], "padding overwritten, " + what) }
                    XCTAssertEqual(fast[i * ldc + j], slow[i * ldc + j], accuracy: 1e-5 * Float(k + rank + 1), what + " (\(i), \(j))")
                } }
              }
            }
        } } } }
    }

    /// `apply` on a block of rows and columns adds (or stores) the tail there and leaves the rest of C alone.
    func testApplyOnABlockAddsOrOverwrites() {
        let (m, n, rank) = (9, 21, 4)
        let h = randomTensor([m, rank], seed: 6).scalars, f = randomTensor([2, rank, n], seed: 7).scalars
        let rowGroups = [0, 1, 1, 0, 1, 0, 0, 1, 1]
        let c0 = randomTensor([m, n], seed: 8).scalars
        for overwrite in [false, true] {
            var got = c0, want = c0
            h.withUnsafeBufferPointer { ph in f.withUnsafeBufferPointer { pf in rowGroups.withUnsafeBufferPointer { pg in
                let tail = GemmRowTail(h: ph.baseAddress!, rank: rank, factors: pf.baseAddress!, ldf: n, groupStride: rank * n,
                                       groupOfRow: pg.baseAddress)
                got.withUnsafeMutableBufferPointer { tail.apply(rows: 2..<7, cols: 3..<20, c: $0.baseAddress!, ldc: n, overwrite: overwrite) }
                want.withUnsafeMutableBufferPointer { c in
                    for i in 2..<7 { for j in 3..<20 {
                        var s: Float = overwrite ? 0 : c[i * n + j]
                        for t in 0..<rank { s += h[i * rank + t] * f[rowGroups[i] * rank * n + t * n + j] }
                        c[i * n + j] = s
                    } }
                }
            } } }
            for i in 0..<m * n { XCTAssertEqual(got[i], want[i], accuracy: 1e-5, "overwrite \(overwrite) at \(i)") }
        }
    }
}
