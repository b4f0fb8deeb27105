import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// The adapters library's LoRA and (IA)^3, gated and not, and a union with a bottleneck adapter, against the library
/// (1.3.0): every case of `golden_adapters_lora/` (`Benchmarks/golden/make_adapters_lora_cases.py`) is loaded from the
/// folder the library's `save_adapter` wrote, and the eval output, the base with adapters disabled, the gating scores
/// (column-stacked per layer and location, as the library returns them) and the gradients of sum(output^2) for every
/// adapter tensor must agree; the folder written back is the library's byte for byte.
final class AdaptersLoRAGoldenTests: XCTestCase {
    let rtol: Float = 1e-5

    static var directory: URL { Bundle.module.url(forResource: "golden_adapters_lora", withExtension: nil)! }

    func testGoldenCases() throws {
        let index = try JSONValue(parsing: try Data(contentsOf: Self.directory.appendingPathComponent("cases.json")))
        let cases = index["cases"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 6)
        var gated = 0
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            do { gated += try runCase(c, in: Self.directory.appendingPathComponent(name)) } catch {
                XCTFail("golden case \(name) could not run: \(error)")
            }
        }
        XCTAssertGreaterThanOrEqual(gated, 4, "cases with gating scores")
    }

    /// Returns 1 when the case has gating scores (all compared).
    func runCase(_ c: JSONValue, in dir: URL) throws -> Int {
        try AdapterHubGolden.runCase(c, in: dir, rtol: rtol, written: dir.appendingPathComponent("adapter"))
    }
}
