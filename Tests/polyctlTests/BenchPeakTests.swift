import XCTest
@testable import polyctl

/// `polyctl bench peak` run in-process with few iterations.
final class BenchPeakTests: XCTestCase {
    func testRunsOnOneAndTwoThreadsAndEndsWithGflops() throws {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "peak", "--iterations", "20000", "--repeat", "2"], console: c), 0, c.stderr)
        let lines = c.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, c.stdout)
        XCTAssertEqual(lines[0], "threads: 1")
        XCTAssertTrue(lines[1].hasPrefix("time:    best ") && lines[1].hasSuffix(" ms over 2 runs of 20000 steps"), lines[1])
        XCTAssertTrue(lines[2].hasPrefix("speed:   ") && lines[2].hasSuffix(" per thread)"), lines[2])
        let gflops = try XCTUnwrap(Double(lines[3].dropFirst("gflops=".count)), lines[3])
        XCTAssertTrue(lines[3].hasPrefix("gflops=") && gflops > 0, lines[3])

        let j = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "peak", "--threads", "2", "--iterations", "10000", "--repeat", "1", "--json"], console: j), 0, j.stderr)
        let json = try XCTUnwrap(j.stdout.split(separator: "\n").first)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["threads"] as? Int, 2)
        XCTAssertEqual(object["iterations"] as? Int, 10000)
        let total = try XCTUnwrap(object["gflops"] as? Double), perThread = try XCTUnwrap(object["gflops_per_thread"] as? Double)
        XCTAssertEqual(total, 2 * perThread, accuracy: 0.002)
    }

    func testBadFlagsAreUsageErrors() {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "peak", "--iterations", "0"], console: c), 64)
        XCTAssertEqual(c.stderr, "error: option '--iterations' must be in 1...1000000000, got 0\nhint: see 'polyctl bench peak --help'\n")
        let t = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "peak", "--threads", "x"], console: t), 64)
        XCTAssertTrue(t.stderr.hasPrefix("error: option '--threads'"), t.stderr)
    }

    func testHelpText() {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "peak", "--help"], console: c), 0)
        XCTAssertEqual(c.stdout, """
            OVERVIEW: Measure the processor's multiply-add rate: the ceiling of the matmul's GFLOP/s.

            USAGE: polyctl bench peak [--threads <t>] [--iterations <n>] [--repeat <r>] [--json]

            OPTIONS:
              --threads <t>     Threads running the loop at once (one per core to measure the whole machine). (default: 1)
              --iterations <n>  Steps of 12 vector multiply-adds per thread and run. (default: 20000000)
              --repeat <r>      Timed runs after one warm-up; the best is reported. (default: 5)
              --json            Print the figures as one JSON object.
              --help            Show help information.

            """)
    }
}
