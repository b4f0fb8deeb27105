import Dispatch
import Foundation
import PolyPEFT

/// `polyctl bench peak`: the processor's fused multiply-add rate, the ceiling the matmul's GFLOP/s are measured
/// against (BENCHMARKS.md gives both as "x% of the machine's FMA rate").
///
/// ```
/// per thread: 12 independent chains  c_j = c_j * a + b  on SIMD8<Float>, registers only (no loads or stores)
/// GFLOP/s = threads * iterations * 12 chains * 8 lanes * 2 flops / best wall time
/// ```
///
/// Twelve chains hide the FMA latency (4-5 cycles) on every x86-64 core with one or two FMA pipes, so the loop runs
/// at the pipes' throughput. Emitted code (checked with `objdump -d --no-show-raw-insn
/// .build/release/polyctl.build/BenchPeak.swift.o`): the loop body is 24 `vfmadd213ps ymm` on registers (two steps:
/// the compiler unrolls by 2), a counter and a branch. Measured figures are in BENCHMARKS.md.
enum BenchPeak: Subcommand {
    static let name = "bench peak"
    static let overview = "Measure the processor's multiply-add rate: the ceiling of the matmul's GFLOP/s."
    static let usage = "bench peak [--threads <t>] [--iterations <n>] [--repeat <r>] [--json]"
    static let options: [OptionSpec] = [
        .int("threads", "<t>", "Threads running the loop at once (one per core to measure the whole machine).", range: 1...1024, default: 1),
        .int("iterations", "Steps of 12 vector multiply-adds per thread and run.", range: 1...1_000_000_000, default: 20_000_000),
        .repeats("Timed runs after one warm-up; the best is reported.", default: 5),
        .benchJSON,
    ]

    static func validate(_ args: ParsedArguments) throws {}

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let threads = args.int("threads")
        let iterations = args.int("iterations")
        let repeats = args.int("repeat")
        // One warm-up run, then the best of `repeats` (BenchSupport's timing, shared with the other benchmarks).
        let best = BenchSupport.bestMilliseconds(rounds: repeats) {
            DispatchQueue.concurrentPerform(iterations: threads) { w in
                // The result feeds a branch with an effect, so the loop cannot be removed; it never prints (the
                // chains converge to b / (1 - a), a finite number).
                let s = chains(iterations: iterations, seed: Float(w + 1))
                if !s.isFinite { FileHandle.standardError.write("bench peak: non-finite sum \(s)\n".data(using: .utf8)!) }
            }
        }
        let gflops = Double(threads) * Double(iterations) * 12 * 8 * 2 / (best * 1e6)
        if args.flag("json") {
            console.print(JSONField.line([("threads", .int(threads)), ("iterations", .int(iterations)), ("repeat", .int(repeats)),
                                          ("best_ms", .fixed(best, digits: 3)), ("gflops", .fixed(gflops, digits: 3)),
                                          ("gflops_per_thread", .fixed(gflops / Double(threads), digits: 3))]))
        } else {
            console.print("threads: \(threads)")
            console.print("time:    best \(BenchSupport.fmt(best)) ms over \(repeats) runs of \(iterations) steps")
            console.print("speed:   \(BenchSupport.fmt(gflops)) GFLOP/s (\(BenchSupport.fmt(gflops / Double(threads))) per thread)")
        }
        console.print("gflops=\(BenchSupport.fmt(gflops))")
    }

    /// Runs 12 independent multiply-add chains for `iterations` steps; returns the sum of their lanes.
    @inline(never)
    static func chains(iterations: Int, seed: Float) -> Float {
        let a = SIMD8<Float>(repeating: 1 - 1e-4 / seed), b = SIMD8<Float>(repeating: 1e-7 * seed)
        var c0 = SIMD8<Float>(repeating: 0), c1 = SIMD8<Float>(repeating: 1), c2 = SIMD8<Float>(repeating: 2)
        var c3 = SIMD8<Float>(repeating: 3), c4 = SIMD8<Float>(repeating: 4), c5 = SIMD8<Float>(repeating: 5)
        var c6 = SIMD8<Float>(repeating: 6), c7 = SIMD8<Float>(repeating: 7), c8 = SIMD8<Float>(repeating: 8)
        var c9 = SIMD8<Float>(repeating: 9), c10 = SIMD8<Float>(repeating: 10), c11 = SIMD8<Float>(repeating: 11)
        for _ in 0..<iterations {
            c0 = madd(c0, a, b); c1 = madd(c1, a, b); c2 = madd(c2, a, b); c3 = madd(c3, a, b)
            c4 = madd(c4, a, b); c5 = madd(c5, a, b); c6 = madd(c6, a, b); c7 = madd(c7, a, b)
            c8 = madd(c8, a, b); c9 = madd(c9, a, b); c10 = madd(c10, a, b); c11 = madd(c11, a, b)
        }
        return ((c0 + c1) + (c2 + c3) + (c4 + c5) + (c6 + c7) + (c8 + c9) + (c10 + c11)).sum()
    }

    /// `c * a + b`, fused where the build has FMA (`POLYPEFT_FMA`, as in the library's kernels).
    @inline(__always)
    static func madd(_ c: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        #if POLYPEFT_FMA
        return b.addingProduct(c, a)
        #else
        return c * a + b
        #endif
    }
}
