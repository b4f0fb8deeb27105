import Dispatch
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The packed matmul's scratch-memory cache: page-aligned buffers, reused, one caller at a time, bounded.
final class GemmWorkspaceTests: XCTestCase {
    func address(_ p: UnsafeMutablePointer<Float>) -> Int { Int(bitPattern: UnsafeMutableRawPointer(p)) }

    func testBuffersArePageAlignedLargeEnoughAndReused() {
        let cache = GemmWorkspace()
        let first = cache.withFloats(10_000) { p -> Int in
            p.update(repeating: 1, count: 10_000)    // the whole requested range is writable
            return address(p)
        }
        XCTAssertEqual(first % GemmWorkspace.pageBytes, 0)
        XCTAssertEqual(cache.cachedCount, 1)
        // A request that fits is served by the same buffer; a larger one replaces it.
        XCTAssertEqual(cache.withFloats(5_000) { address($0) }, first)
        let larger = cache.withFloats(200_000) { p -> Int in
            p.update(repeating: 2, count: 200_000)
            return address(p)
        }
        XCTAssertEqual(larger % GemmWorkspace.pageBytes, 0)
        XCTAssertEqual(cache.cachedCount, 1)
        XCTAssertEqual(cache.withFloats(10_000) { address($0) }, larger)
        XCTAssertEqual(cache.withFloats(0) { address($0) } % GemmWorkspace.pageBytes, 0)
    }

    func testNestedCallersGetDistinctBuffersAndAtMostTwoAreKept() {
        let cache = GemmWorkspace()
        var seen: [Int] = []
        cache.withFloats(100) { a in
            cache.withFloats(100) { b in
                cache.withFloats(100) { c in
                    seen = [address(a), address(b), address(c)]
                }
            }
        }
        XCTAssertEqual(Set(seen).count, 3, "a buffer is never handed to two callers at once")
        XCTAssertEqual(cache.cachedCount, GemmWorkspace.maxCached)
    }

    func testOversizedBuffersAreNotKept() {
        let cache = GemmWorkspace()
        cache.withFloats(GemmWorkspace.maxCachedBytes / 4 + 1) { $0[0] = 1 }
        XCTAssertEqual(cache.cachedCount, 0)
    }

    func testConcurrentCallersDoNotShareABuffer() {
        let cache = GemmWorkspace()
        let count = 4096
        nonisolated(unsafe) let failures = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        failures.initialize(repeating: 0, count: 8)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            for round in 0..<50 {
                cache.withFloats(count + 97 * w) { p in
                    let value = Float(w * 1000 + round)
                    p.update(repeating: value, count: count)
                    for i in stride(from: 0, to: count, by: 61) where p[i] != value { failures[w] += 1 }
                }
            }
        }
        XCTAssertEqual((0..<8).reduce(0) { $0 + failures[$1] }, 0)
        XCTAssertLessThanOrEqual(cache.cachedCount, GemmWorkspace.maxCached)
    }
}
