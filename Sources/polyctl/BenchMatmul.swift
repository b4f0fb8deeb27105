import Foundation
import PolyPEFT

/// `polyctl bench matmul`: times `Tensor.matmul` on one shape after checking a sample of its result.
///
/// ```
/// A: [m, k] (stored [k, m] and read as a transposed view with --transpose-a), B: [k, n] (likewise --transpose-b)
/// GFLOP/s = 2 * m * n * k / best time
/// ```
enum BenchMatmul: Subcommand {
    static let name = "bench matmul"
    static let overview = "Time the matrix multiply on one shape and check it against the reference."
    static let usage = "bench matmul --m <m> --n <n> --k <k> [--threads <t>] [--transpose-a] [--transpose-b] [--repeat <r>] [--json]"
    static let options: [OptionSpec] = [
        .int("m", "<m>", "Rows of A and C.", range: 1...65_536, default: 512),
        .int("n", "<n>", "Columns of B and C.", range: 1...65_536, default: 512),
        .int("k", "<k>", "Columns of A, rows of B.", range: 1...65_536, default: 512),
        .threads,
        .flag("transpose-a", "Store A as [k, m] and multiply its transposed view."),
        .flag("transpose-b", "Store B as [n, k] and multiply its transposed view."),
        .repeats("Timed runs after one warm-up; the best is reported.", default: 10),
        .benchJSON,
    ]

    static func validate(_ args: ParsedArguments) throws {
        let m = args.int("m"), n = args.int("n"), k = args.int("k")
        try BenchSupport.checkSizes([("A", m * k), ("B", k * n), ("C", m * n)], args)
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let m = args.int("m"), n = args.int("n"), k = args.int("k")
        let threads = args.threads
        let repeats = args.int("repeat")
        let ta = args.flag("transpose-a"), tb = args.flag("transpose-b")

        var rng = Xoshiro256(seed: 42)
        // a: [m, k], b: [k, n] (views over transposed storage when asked)
        let a = ta ? Tensor.uniform([k, m], low: -1, high: 1, using: &rng).T : Tensor.uniform([m, k], low: -1, high: 1, using: &rng)
        let b = tb ? Tensor.uniform([n, k], low: -1, high: 1, using: &rng).T : Tensor.uniform([k, n], low: -1, high: 1, using: &rng)

        let c = try a.matmul(b, threads: threads)  // warm-up, and the result checked below
        try verify(a, b, c, rng: &rng)

        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let r = try a.matmul(b, threads: threads)
            let end = DispatchTime.now().uptimeNanoseconds
            precondition(r.shape == [m, n])
            times.append(Double(end - start) / 1e6)
        }
        times.sort()
        let best = times[0], median = times[times.count / 2]
        let gflops = 2 * Double(m) * Double(n) * Double(k) / (best * 1e6)
        let shape = "[\(m),\(k)]\(ta ? "^T" : "") x [\(k),\(n)]\(tb ? "^T" : "")"
        if args.flag("json") {
            console.print(JSONField.line([("m", .int(m)), ("n", .int(n)), ("k", .int(k)), ("transpose_a", .bool(ta)),
                                          ("transpose_b", .bool(tb)), ("threads", .int(threads)), ("repeat", .int(repeats)),
                                          ("best_ms", .fixed(best, digits: 3)), ("median_ms", .fixed(median, digits: 3)),
                                          ("gflops", .fixed(gflops, digits: 3))]))
        } else {
            console.print("shape:   \(shape)")
            console.print("threads: \(threads)")
            console.print("time:    best \(BenchSupport.fmt(best)) ms, median \(BenchSupport.fmt(median)) ms over \(repeats) runs")
            console.print("speed:   \(BenchSupport.fmt(gflops)) GFLOP/s")
        }
        console.print("gflops=\(BenchSupport.fmt(gflops))")
    }

    /// Checks up to 256 sampled entries of `c` against dot products in `Double`.
    static func verify(_ a: Tensor, _ b: Tensor, _ c: Tensor, rng: inout Xoshiro256) throws {
        let m = a.shape[0], k = a.shape[1], n = b.shape[1]
        let av = a.scalars, bv = b.scalars, cv = c.scalars  // row-major copies, outside the timing
        let samples = Swift.min(256, m * n)
        for s in 0..<samples {
            let flat = samples == m * n ? s : Int(rng.next() % UInt64(m * n))
            let i = flat / n, j = flat % n
            var dot = 0.0, mag = 0.0
            for p in 0..<k {
                let t = Double(av[i * k + p]) * Double(bv[p * n + j])
                dot += t
                mag += Swift.abs(t)
            }
            let got = Double(cv[i * n + j])
            guard Swift.abs(got - dot) <= 1e-5 * mag + 1e-6 else {
                throw CLIError.runtime("result check failed at C[\(i), \(j)]: got \(got), expected \(dot)")
            }
        }
    }
}
