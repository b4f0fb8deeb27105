import Dispatch
import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// `Parallel.run` on `WorkerPool.shared`: every worker index runs exactly once, with one caller, with callers on
/// several threads at once (the pool takes one and the others fall back to `concurrentPerform`), and nested.
final class WorkerPoolTests: XCTestCase {
    /// Counts how often each index ran; guarded by a lock because workers of one run are concurrent.
    final class Counts: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [Int]
        init(_ n: Int) { counts = Array(repeating: 0, count: n) }
        func hit(_ i: Int) { lock.lock(); counts[i] += 1; lock.unlock() }
        var values: [Int] { lock.lock(); defer { lock.unlock() }; return counts }
    }

    func testEveryWorkerIndexRunsOnce() {
        for workers in 1...5 {
            for _ in 0..<200 {
                let counts = Counts(workers)
                Parallel.run(workers: workers) { counts.hit($0) }
                XCTAssertEqual(counts.values, Array(repeating: 1, count: workers), "workers \(workers)")
            }
        }
    }

    func testPoolRefusesWhileBusyAndNestedRunsStillComplete() {
        let pool = WorkerPool(maxHelpers: 1)
        let inner = Counts(1)
        XCTAssertTrue(pool.run(workers: 2) { w in
            if w == 0 { inner.hit(0); XCTAssertFalse(pool.run(workers: 2) { _ in }) }
        })
        XCTAssertFalse(pool.run(workers: 3) { _ in }, "3 workers need 2 helpers")
        XCTAssertEqual(inner.values, [1])
        // Nested Parallel.run inside a worker of the shared pool: falls back, still runs every index.
        let counts = Counts(4)
        Parallel.run(workers: 2) { w in
            Parallel.run(workers: 2) { v in counts.hit(2 * w + v) }
        }
        XCTAssertEqual(counts.values, [1, 1, 1, 1])
    }

    /// Four threads multiply at once with 2 threads each (threaded small squares, odd sizes, the packed and direct
    /// kernels): every result matches the reference.
    func testConcurrentCallersGetCorrectProducts() {
        let shapes = [(97, 101, 103), (128, 128, 128), (130, 96, 70), (1030, 8, 100), (6, 1000, 150)]
        for (m, n, k) in shapes { XCTAssertGreaterThanOrEqual(m * n * k, Gemm.parallelThreshold) }
        let failures = Counts(1)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            var rng = Xoshiro256(seed: UInt64(100 + caller))
            for round in 0..<6 {
                let (m, n, k) = shapes[(caller + round) % shapes.count]
                let a = Tensor.uniform([m, k], low: -1, high: 1, using: &rng).scalars
                let b = Tensor.uniform([k, n], low: -1, high: 1, using: &rng).scalars
                var c = [Float](repeating: .nan, count: m * n), r = [Float](repeating: 0, count: m * n)
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            Gemm.multiply(m: m, n: n, k: k, a: ap.baseAddress!, rowStrideA: k, colStrideA: 1,
                                          b: bp.baseAddress!, rowStrideB: n, colStrideB: 1, c: cp.baseAddress!, ldc: n,
                                          accumulate: false, threads: 2)
                        }
                        r.withUnsafeMutableBufferPointer { rp in
                            Gemm.reference(m: m, n: n, k: k, a: ap.baseAddress!, rowStrideA: k, colStrideA: 1,
                                           b: bp.baseAddress!, rowStrideB: n, colStrideB: 1, c: rp.baseAddress!, ldc: n,
                                           accumulate: false)
                        }
                    }
                }
                for i in 0..<(m * n) where !(abs(c[i] - r[i]) <= 1e-5 * Float(k)) { failures.hit(0); break }
            }
        }
        XCTAssertEqual(failures.values, [0])
    }

    /// `forEachPart` covers `0..<count` exactly once: inline below the threshold, in near-equal parts above it, and
    /// calls nothing for an empty range.
    func testForEachPartCoversTheRangeOnce() {
        for (count, work, threads) in [(0, 10, 2), (7, 1, 2), (7, 10, 2), (3, 10, 8), (1000, 10, 2)] {
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: Swift.max(count, 1))
            hits.initialize(repeating: 0)
            defer { hits.deallocate() }
            let lock = NSLock()
            var parts: [Range<Int>] = []
            Parallel.forEachPart(count: count, work: work, threshold: 5, threads: threads) { part in
                lock.lock(); parts.append(part); lock.unlock()
                for i in part { hits[i] += 1 }
            }
            XCTAssertEqual(Array(hits.prefix(count)), [Int](repeating: 1, count: count), "count \(count) work \(work)")
            XCTAssertEqual(parts.count, count == 0 ? 0 : (work < 5 ? 1 : Swift.min(threads, count)), "count \(count) work \(work)")
        }
    }
}
