import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class MallocTuningTests: XCTestCase {
    /// After `keepLargeBlocks`, a freed 8 MiB tensor's memory is reused by the next one of that size: filling it again
    /// faults (almost) no pages in, where a fresh mapping would take one minor fault per 4 KiB (2,048). Without the
    /// call this test measured 2,048 faults. The setting stays for the rest of the test process, which only changes
    /// where memory comes from, never a value.
    func testFreedLargeTensorsAreReusedWithoutPageFaults() throws {
        #if canImport(Glibc)
        XCTAssertTrue(MallocTuning.keepLargeBlocks())
        let count = 2 << 20                                  // 8 MiB of Float
        func fill() -> Float {
            let t = Tensor(repeating: 1, shape: [count])     // allocated, written, freed at return
            return t.storage[count - 1]
        }
        XCTAssertEqual(fill(), 1)                            // the first one may grow the heap
        let before = try XCTUnwrap(MallocTuning.minorPageFaults())
        for _ in 0..<4 { XCTAssertEqual(fill(), 1) }
        let faults = try XCTUnwrap(MallocTuning.minorPageFaults()) - before
        XCTAssertLessThan(faults, 200, "4 allocations of 8 MiB took \(faults) minor faults (2,048 each if remapped)")
        #else
        XCTAssertFalse(MallocTuning.keepLargeBlocks())
        #endif
    }
}
