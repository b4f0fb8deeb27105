import XCTest
@testable import polyctl

/// Small seeded versions of the research experiments, with loose thresholds (the full runs are in EXPERIMENTS.md).
final class ExperimentTests: XCTestCase {
    func run(_ args: [String]) -> (code: Int32, out: String, err: String) {
        let c = Console(passthrough: false)
        let code = PolyCtl.run(args, console: c)
        return (code, c.stdout, c.stderr)
    }

    /// Values of the table row whose first cell is `label`.
    func row(_ out: String, _ label: String) -> [String] {
        out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.first { $0.first == label } ?? []
    }

    func testRecoveryOutputMixingRecoversTheAllocation() {
        let r = run(["experiment", "recovery", "--seeds", "1", "--steps", "600"])
        XCTAssertEqual(r.code, 0, r.err)
        let outputs = r.out.split(separator: "\n").first { $0.hasPrefix("outputs ") && $0.contains(" 0 ") }
        XCTAssertNotNil(outputs, r.out)
        let cells = Float(outputs!.split(separator: " ")[2].dropLast()) ?? 0
        XCTAssertGreaterThan(cells, 80, r.out)
    }

    func testFewShotRoutingOnlyBeatsTheBaseModel() throws {
        let r = run(["experiment", "fewshot", "--steps", "600", "--adapt-steps", "40", "--k", "20"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("method        trainable     k=20"), r.out)
        let base = Float(r.out.split(separator: "base model alone: ")[1].prefix(7))!
        let z = Float(row(r.out, "Poly-z").last!)!
        XCTAssertEqual(row(r.out, "Poly-z")[1], "12")                     // 6 skills x 2 layers
        XCTAssertLessThan(z, base * 0.7, r.out)
    }

    func testExperimentUsageErrors() {
        XCTAssertEqual(run(["experiment"]).code, 0)                       // group help
        let bad = run(["experiment", "fewshot", "--k", "5,x"])
        XCTAssertEqual(bad.code, 64)
        XCTAssertEqual(bad.err, "error: option '--k' expects positive integers separated by commas, got '5,x'\nhint: see 'polyctl experiment fewshot --help'\n")
        XCTAssertEqual(run(["experiment", "fewshot", "--k", "500"]).code, 64)
        XCTAssertEqual(run(["experiment", "nothing"]).code, 64)
    }
}
