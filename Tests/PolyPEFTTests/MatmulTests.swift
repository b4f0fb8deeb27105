import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The fast matmul (packed, direct, threaded) against the naive reference, on odd shapes and strided views.
final class MatmulTests: XCTestCase {
    func rand(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = Xoshiro256(seed: seed)
        return Tensor.uniform(shape, low: -1, high: 1, using: &rng)
    }

    /// Same shape, and every element within `1e-5 * k` (entries of the operands are in [-1, 1], so a dot product of
    /// length k is a sum of k terms of magnitude <= 1).
    func assertClose(_ x: Tensor, _ y: Tensor, k: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(x.shape, y.shape, what, file: file, line: line)
        guard x.shape == y.shape else { return }
        let a = x.scalars, b = y.scalars
        var worst: Float = 0
        for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-5 * Float(max(k, 1)), what, file: file, line: line)
        XCTAssertFalse(a.contains { $0.isNaN }, what, file: file, line: line)
    }

    func testOddShapesMatchReference() throws {
        let sizes = [1, 7, 9, 17, 130]
        var shapes: [(Int, Int, Int)] = []
        for m in sizes { for n in sizes { for k in sizes { shapes.append((m, n, k)) } } }
        // The other odd sizes, one of 300 (one block of depth) and one of 801 (three blocks of the packed kernel's
        // depth, 272 + 272 + 257), and shapes big enough to be
        // threaded on each kernel: direct with n <= 16, direct with m <= 8, packed split by rows and by columns.
        // (Threaded means m * n * k >= Gemm.parallelThreshold, about 0.8M.)
        shapes += [(3, 8, 65), (8, 33, 3), (65, 3, 8), (33, 65, 8), (7, 64, 40), (130, 33, 300), (37, 45, 801),
                   (301, 299, 257), (1030, 8, 400), (700, 13, 400), (8, 1500, 300), (5, 1040, 640), (40, 1300, 70)]
        XCTAssertGreaterThanOrEqual(40 * 1300 * 70, Gemm.parallelThreshold)
        var seed: UInt64 = 1
        for (m, n, k) in shapes {
            let a = rand([m, k], seed: seed), b = rand([k, n], seed: seed + 1)
            seed += 2
            let expected = try a.matmulReference(b)
            try forEachSIMDLevel { level in
                for threads in [1, 2] {
                    assertClose(try a.matmul(b, threads: threads), expected, k: k,
                                "[\(m),\(k)]x[\(k),\(n)] threads \(threads) \(level)")
                }
            }
        }
    }

    func testTransposedAndSlicedOperandsAreReadInPlace() throws {
        for (m, n, k) in [(7, 9, 17), (33, 130, 65), (130, 8, 300), (8, 130, 65), (1024, 8, 400), (8, 1200, 400)] {
            let at = rand([k, m], seed: 10).T                                   // a: [m, k], strides [1, m]
            let bt = rand([n, k], seed: 11).T                                   // b: [k, n], strides [1, k]
            let aSliced = try rand([m + 3, 2 * k], seed: 12).sliced(axis: 0, start: 2, end: m + 2)
                .sliced(axis: 1, step: 2)                                       // a: [m, k], strides [2k, 2]
            let bSliced = try rand([k, 3 * n + 1], seed: 13).sliced(axis: 1, start: 1, step: 3)  // b: [k, n], strides [3n+1, 3]
            let aBroadcast = try rand([1, k], seed: 14).expanded(to: [m, k])          // a: [m, k], strides [0, 1]
            XCTAssertFalse(at.isContiguous || bt.isContiguous || aSliced.isContiguous || bSliced.isContiguous)
            for (a, b) in [(at, bt), (at, bSliced), (aSliced, bt), (aSliced, bSliced), (at.contiguous(), bt),
                           (aBroadcast, bSliced)] {
                // Oracle on contiguous copies, so the reference's own stride handling is not trusted either.
                let expected = try a.contiguous().matmulReference(b.contiguous())
                XCTAssertEqual(try a.matmulReference(b), expected)
                try forEachSIMDLevel { level in
                    for threads in [1, 2] {
                        assertClose(try a.matmul(b, threads: threads), expected, k: k,
                                    "[\(m),\(k)]x[\(k),\(n)] strides \(a.strides) \(b.strides) threads \(threads) \(level)")
                    }
                }
            }
        }
    }

    func testBatchedWithBroadcast() throws {
        let cases: [([Int], [Int], [Int])] = [
            ([2, 1, 5, 7], [3, 7, 4], [2, 3, 5, 4]),
            ([4, 17, 9], [9, 33], [4, 17, 33]),       // rank-2 right operand broadcast over the batch
            ([9, 17], [3, 17, 8], [3, 9, 8]),         // rank-2 left operand
            ([6, 40, 70], [6, 70, 40], [6, 40, 40]),  // small products: the batch is shared among threads
            ([2, 200, 130], [1, 130, 90], [2, 200, 90]),  // big products, few: the threads inside each
            ([5, 100, 97], [5, 97, 90], [5, 100, 90]),    // big products, two per thread: the batch is shared
        ]
        for (i, (sa, sb, so)) in cases.enumerated() {
            let a = rand(sa, seed: 20 + UInt64(i)), b = rand(sb, seed: 40 + UInt64(i))
            let k = sa.last!
            for threads in [1, 2] {
                let c = try a.matmul(b, threads: threads)
                XCTAssertEqual(c.shape, so)
                // Each batch element against a rank-2 product of the broadcast slices.
                let a4 = try a.expanded(to: Array(so.dropLast(2)) + Array(sa.suffix(2)))
                let b4 = try b.expanded(to: Array(so.dropLast(2)) + Array(sb.suffix(2)))
                let batch = Tensor.elementCount(Array(so.dropLast(2)))
                let flatA = try a4.reshaped([batch] + Array(sa.suffix(2)))
                let flatB = try b4.reshaped([batch] + Array(sb.suffix(2)))
                let flatC = try c.reshaped([batch] + Array(so.suffix(2)))
                for e in 0..<batch {
                    let expected = try flatA.selecting(index: e).matmulReference(flatB.selecting(index: e))
                    assertClose(try flatC.selecting(index: e), expected, k: k, "\(sa) x \(sb) batch \(e) threads \(threads)")
                }
            }
        }
    }

    func testVectorOperandsFollowNumPy() throws {
        let v = rand([5], seed: 1), m = rand([5, 3], seed: 2), w = rand([4, 5], seed: 3), batch = rand([2, 5, 3], seed: 4)
        let vm = try v.matmul(m)
        XCTAssertEqual(vm.shape, [3])
        assertClose(vm, try v.reshaped([1, 5]).matmulReference(m).reshaped([3]), k: 5, "vector x matrix")
        let mv = try w.matmul(v)
        XCTAssertEqual(mv.shape, [4])
        assertClose(mv, try w.matmulReference(v.reshaped([5, 1])).reshaped([4]), k: 5, "matrix x vector")
        let vv = try v.matmul(v)
        XCTAssertEqual(vv.shape, [])
        XCTAssertEqual(vv.scalarValue, v.scalars.reduce(0) { $0 + $1 * $1 }, accuracy: 1e-5)
        XCTAssertEqual(try v.matmul(batch).shape, [2, 3])
    }

    func testEmptyAndZeroDepth() throws {
        XCTAssertEqual(try Tensor.zeros([0, 5]).matmul(rand([5, 3], seed: 1)).shape, [0, 3])
        let z = try Tensor.zeros([2, 0]).matmul(Tensor.zeros([0, 3]))
        XCTAssertEqual(z, Tensor.zeros([2, 3]))
    }

    func testGemmAccumulatesAndRespectsLdc() throws {
        // m, n, k chosen to hit the direct kernel (n <= 16, m <= 8) and the packed one, with k spanning several
        // chunks of each, so the later chunks' "add" is exercised along with the caller's. 241 x 50 x 800: the packed
        // kernel's rows in three near-equal A blocks (14, 14 and 13 panels of 6, the last with one valid row), on
        // one thread and split among two, over three blocks of depth. 1000 x 40 x 30 on 2 threads: tasks of 2 A blocks each.
        // 5 x 90 x 70, 8 x 77 x 150, 3 x 33 x 16: few rows (4x16 tiles, one or two row blocks), k swept in 64-deep
        // chunks with a ragged last one, or in one; ragged columns.
        for (m, n, k) in [(37, 11, 70), (5, 90, 70), (8, 77, 150), (3, 33, 16), (50, 40, 300), (50, 40, 0), (241, 50, 800), (1000, 40, 30)] {
            for threads in [1, 2] {
                let a = rand([m, k], seed: 5).scalars, b = rand([k, n], seed: 6).scalars
                let ldc = n + 3
                let c0 = rand([m, ldc], seed: 7).scalars
                var fast = c0, slow = c0
                for accumulate in [true, false] {
                    fast = c0; slow = c0
                    fast.withUnsafeMutableBufferPointer { c in
                        Gemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: k, colStrideA: 1, b: b, rowStrideB: n, colStrideB: 1,
                                      c: c.baseAddress!, ldc: ldc, accumulate: accumulate, threads: threads)
                    }
                    slow.withUnsafeMutableBufferPointer { c in
                        Gemm.reference(m: m, n: n, k: k, a: a, rowStrideA: k, colStrideA: 1, b: b, rowStrideB: n, colStrideB: 1,
                                       c: c.baseAddress!, ldc: ldc, accumulate: accumulate)
                    }
                    for i in 0..<m {
                        for j in 0..<ldc {
                            let e = fast[i * ldc + j], r = slow[i * ldc + j]
                            if j >= n { XCTAssertEqual(e, c0[i * ldc + j], "padding column overwritten") }
                            XCTAssertEqual(e, r, accuracy: 1e-5 * Float(max(k, 1)),
                                           "m=\(m) n=\(n) k=\(k) acc=\(accumulate) threads=\(threads) (\(i),\(j))")
                        }
                    }
                    if k == 0 && !accumulate { XCTAssertEqual(fast[0], 0) }
                }
            }
        }
    }

    /// The packed kernel's depth blocks: the fewest of at most `kcMax`, of near-equal size (a multiple of 8 when
    /// there are several), covering k with a last block that is not a sliver.
    /// The tile follows the level: the baseline's 6x16 always, the 12x32 one only where the CPU has AVX-512.
    func testTileFollowsTheSIMDLevel() {
        XCTAssertEqual(GemmPacked.Tile.for(.baseline), .base)
        XCTAssertEqual(GemmPacked.Tile.for(.avx512), SIMDLevel.detected == .avx512 ? .wide : .base)
        SIMDLevel.$limit.withValue(.baseline) { XCTAssertEqual(SIMDLevel.current, .baseline) }
        XCTAssertLessThanOrEqual(SIMDLevel.current, SIMDLevel.detected)
        for tile in [GemmPacked.Tile.base, .wide] {
            XCTAssertEqual(tile.mc % tile.mr, 0)
            XCTAssertEqual(tile.nc % tile.nr, 0, "a B block is whole panels")
            XCTAssertLessThanOrEqual(GemmPacked.depthBlock(4096, max: tile.kcMax), tile.kcMax)
        }
    }

    func testDepthBlocksAreFewAndEven() {
        XCTAssertEqual([1, 7, 256, 384, 385, 768, 1024, 2048, 4096].map { GemmPacked.depthBlock($0) }, [1, 7, 256, 384, 200, 384, 344, 344, 376])
        for k in 1...5000 {
            let kc = GemmPacked.depthBlock(k)
            let blocks = (k + kc - 1) / kc, last = k - (blocks - 1) * kc
            XCTAssertLessThanOrEqual(kc, GemmPacked.kcMax)
            XCTAssertEqual(blocks, (k + GemmPacked.kcMax - 1) / GemmPacked.kcMax, "k = \(k)")
            if blocks > 1 {
                XCTAssertEqual(kc % 8, 0, "k = \(k)")
                XCTAssertGreaterThan(last, kc - 8 * blocks, "k = \(k): last block \(last) of \(kc)")
            }
        }
    }

    /// The packed kernel's task count: one task on one worker; otherwise a multiple of the workers (or every panel
    /// when there are fewer), at most 4 per worker, and about one A block (20 panels) each.
    func testPackedTaskCountIsAMultipleOfTheWorkers() {
        XCTAssertEqual([22, 43, 64, 86, 171, 342].map { GemmPacked.taskCount(units: $0, workers: 2) }, [2, 4, 4, 6, 8, 8])
        for workers in 1...5 {
            for units in 1...400 {
                let tasks = GemmPacked.taskCount(units: units, workers: workers)
                if workers == 1 { XCTAssertEqual(tasks, 1); continue }
                XCTAssertTrue(tasks == units || tasks % workers == 0, "units \(units), workers \(workers): \(tasks)")
                XCTAssertGreaterThanOrEqual(tasks, Swift.min(units, workers))
                XCTAssertLessThanOrEqual(tasks, Swift.min(units, 4 * workers))
                if tasks < 4 * workers && tasks < units {
                    XCTAssertLessThanOrEqual((units + tasks - 1) / tasks, GemmPacked.mc / GemmPacked.mr, "units \(units): \(tasks)")
                }
            }
        }
    }

    /// The selection rules (GemmSelection.swift) on the shapes they were written for: LoRA's products and their
    /// gradients go to the direct kernel, squares to the packed one, and the direct kernel's schedule sweeps k in
    /// chunks only for transposed A or few rows.
    func testSelectionRulesOnTypicalShapes() {
        let cases: [(m: Int, n: Int, k: Int, kernel: Gemm.Kernel)] = [
            (2048, 8, 1024, .direct), (2048, 1024, 8, .packed), (1024, 8, 2048, .direct), (8, 1024, 2048, .direct),
            (9, 17, 5, .packed), (9, 16, 5, .direct), (5, 1000, 1000, .direct), (512, 512, 512, .packed), (3, 3, 0, .zeroFill),
        ]
        for c in cases { XCTAssertEqual(Gemm.kernel(m: c.m, n: c.n, k: c.k), c.kernel, "\(c)") }
        XCTAssertEqual(Gemm.workers(m: 91, n: 92, k: 92, threads: 2), 1)
        XCTAssertEqual(Gemm.workers(m: 128, n: 128, k: 128, threads: 2), 2)
        typealias S = GemmDirect.Schedule
        XCTAssertEqual(GemmDirect.schedule(m: 2048, n: 8, k: 1024, csA: 1, workers: 2),                  // x A^T
                       S(wide: false, splitRows: true, chunk: 1024, tasks: 8))
        XCTAssertEqual(GemmDirect.schedule(m: 1024, n: 8, k: 2048, csA: 1024, workers: 2),               // x^T g
                       S(wide: false, splitRows: true, chunk: GemmDirect.kc, tasks: 2))
        XCTAssertEqual(GemmDirect.schedule(m: 8, n: 1024, k: 2048, csA: 8, workers: 2),                  // g^T x
                       S(wide: true, splitRows: false, chunk: GemmDirect.kcWide, tasks: 2))
        XCTAssertEqual(GemmDirect.schedule(m: 8, n: 1024, k: 2048, csA: 8, workers: 1).tasks, 1)
        XCTAssertTrue(GemmPacked.splitsRows(rowPanels: 3, columnPanels: 64, workers: 2) == false)
        XCTAssertTrue(GemmPacked.splitsRows(rowPanels: 8, columnPanels: 64, workers: 2))
        XCTAssertTrue(MatmulPlan.batchSplit(count: 16, m: 64, n: 64, k: 64, workers: 2) == (2, 1))     // small products
        XCTAssertTrue(MatmulPlan.batchSplit(count: 3, m: 512, n: 512, k: 512, workers: 2) == (1, 2))   // large, few
        XCTAssertTrue(MatmulPlan.batchSplit(count: 4, m: 512, n: 512, k: 512, workers: 2) == (2, 1))   // two per worker
        XCTAssertTrue(MatmulPlan.batchSplit(count: 1, m: 64, n: 64, k: 64, workers: 2) == (1, 2))
    }

    /// The packed kernel's workspace: B's block first, then one A block per worker, each on its own page, with room
    /// for all of them and no overlap.
    func testPackedWorkspaceLayoutIsPageAlignedWithoutOverlap() {
        let page = GemmWorkspace.pageBytes / 4
        for (bCount, aCount, workers) in [(1, 1, 1), (344 * 2048, 344 * 120, 1), (256 * 16, 7 * 6, 2), (1024, 1024, 3)] {
            let (aOffset, aStride, total) = GemmPacked.workspaceLayout(bCount: bCount, aCount: aCount, workers: workers)
            XCTAssertGreaterThanOrEqual(aOffset, bCount)
            XCTAssertGreaterThanOrEqual(aStride, aCount)
            XCTAssertEqual(aOffset % page, 0)
            XCTAssertEqual(aStride % page, 0)
            XCTAssertEqual(total, aOffset + workers * aStride)
            XCTAssertLessThan(total, bCount + workers * aCount + (workers + 1) * page, "no more than a page of padding each")
        }
    }

    func testMismatchedShapesThrowNamingBoth() {
        func message(_ a: [Int], _ b: [Int], threads: Int? = nil) -> String? {
            do { _ = try Tensor.zeros(a).matmul(Tensor.zeros(b), threads: threads); return nil } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(message([2, 3], [4, 5]),
                       "matmul: shapes [2, 3] and [4, 5] do not fit: 3 columns on the left, 4 rows on the right")
        XCTAssertEqual(message([7], [6]), "matmul: shapes [7] and [6] do not fit: 7 columns on the left, 6 rows on the right")
        XCTAssertEqual(message([2, 3, 4], [3, 4, 5]),
                       "matmul: batch dimensions [2] and [3] of shapes [2, 3, 4] and [3, 4, 5] cannot be broadcast together")
        XCTAssertEqual(message([], [3]), "matmul: operands must have rank >= 1, got shapes [] and [3]")
        XCTAssertEqual(message([2, 2], [2, 2], threads: 0), "matmul: threads must be at least 1, got 0")
        XCTAssertThrowsError(try Tensor.zeros([2, 3]).matmulReference(Tensor.zeros([2, 3])))
    }
}
