import XCTest
@testable import polyctl

/// `polyctl bench matmul` run in-process on tiny shapes.
final class BenchMatmulTests: XCTestCase {
    func testTinyShapeRunsAndEndsWithGflops() {
        for extra in [[], ["--transpose-a", "--transpose-b", "--json"]] {
            let c = Console(passthrough: false)
            let code = PolyCtl.run(["bench", "matmul", "--m", "5", "--n", "19", "--k", "3", "--threads", "2", "--repeat", "2"] + extra,
                                   console: c)
            XCTAssertEqual(code, 0, c.stderr)
            let lines = c.stdout.split(separator: "\n")
            XCTAssertTrue(lines.last?.hasPrefix("gflops=") ?? false, c.stdout)
            XCTAssertNotNil(Double(lines.last?.dropFirst("gflops=".count) ?? ""), c.stdout)
            if extra.isEmpty {
                XCTAssertEqual(lines.first, "shape:   [5,3] x [3,19]")
            } else {
                XCTAssertTrue(lines.first?.hasPrefix("{\"m\": 5, \"n\": 19, \"k\": 3, \"transpose_a\": true, \"transpose_b\": true, \"threads\": 2, \"repeat\": 2,") ?? false, c.stdout)
            }
        }
    }

    func testBadFlagsAreUsageErrors() {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "matmul", "--bogus"], console: c), 64)
        XCTAssertEqual(c.stderr, "error: unknown option '--bogus'\nhint: see 'polyctl bench matmul --help'\n")
        let z = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "matmul", "--m", "0"], console: z), 64)
        XCTAssertEqual(z.stderr, "error: option '--m' must be in 1...65536, got 0\nhint: see 'polyctl bench matmul --help'\n")
        let big = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "matmul", "--m", "65536", "--k", "65536"], console: big), 64)
        XCTAssertTrue(big.stderr.hasPrefix("error: A would have 4294967296 elements"), big.stderr)
    }

    func testHelpText() {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "matmul", "--help"], console: c), 0)
        XCTAssertEqual(c.stdout, """
            OVERVIEW: Time the matrix multiply on one shape and check it against the reference.

            USAGE: polyctl bench matmul --m <m> --n <n> --k <k> [--threads <t>] [--transpose-a] [--transpose-b] [--repeat <r>] [--json]

            OPTIONS:
              --m <m>        Rows of A and C. (default: 512)
              --n <n>        Columns of B and C. (default: 512)
              --k <k>        Columns of A, rows of B. (default: 512)
              --threads <t>  Threads to use. (default: all processors or POLYPEFT_THREADS)
              --transpose-a  Store A as [k, m] and multiply its transposed view.
              --transpose-b  Store B as [n, k] and multiply its transposed view.
              --repeat <r>   Timed runs after one warm-up; the best is reported. (default: 10)
              --json         Print the figures as one JSON object.
              --help         Show help information.

            """)
        let g = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["bench", "--help"], console: g), 0)
        XCTAssertTrue(g.stdout.contains("  matmul  Time the matrix multiply"), g.stdout)
    }
}
