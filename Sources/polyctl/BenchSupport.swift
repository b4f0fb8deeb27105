import Foundation
import PolyPEFT

/// What the `bench layer|train|infer` commands share: best-of timing, the machine's load, figure lines, limits.
///
/// ```
/// time(figure) = min over `repeat` rounds of (wall time of `inner` calls) / inner      (after one warm-up call)
/// overhead     = time(adapted) / time(base) - 1
/// ```
enum BenchSupport {
    /// Milliseconds per call of `body`: the best of `rounds` rounds of `inner` calls each, after one warm-up call.
    static func bestMilliseconds(rounds: Int, inner: Int = 1, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var best = Double.infinity
        for _ in 0..<rounds {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<inner { try body() }
            let end = DispatchTime.now().uptimeNanoseconds
            best = Swift.min(best, Double(end - start) / 1e6 / Double(inner))
        }
        return best
    }

    /// Milliseconds per call of each named body, measured interleaved: one warm-up call each, then `rounds` rounds
    /// that each time every body once; the best per body is kept. Figures that are compared with each other (an
    /// adapted layer against its base) thus sample the same moments of a shared machine's load.
    static func interleavedBestMilliseconds(rounds: Int, _ bodies: [(String, () throws -> Void)]) throws -> [(String, Double)] {
        for (_, body) in bodies { try body() }
        var best = [Double](repeating: .infinity, count: bodies.count)
        for _ in 0..<rounds {
            for (i, (_, body)) in bodies.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                best[i] = Swift.min(best[i], Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
        }
        return zip(bodies, best).map { ($0.0.0, $0.1) }
    }

    /// Minor page faults per call of `body` (`MallocTuning.minorPageFaults`), the mean over `calls` calls after the
    /// timed rounds; -1 where the system does not count them.
    static func minorFaultsPerCall(calls: Int, _ body: () throws -> Void) rethrows -> Double {
        let before = MallocTuning.minorPageFaults()
        for _ in 0..<calls { try body() }
        guard let before, let after = MallocTuning.minorPageFaults() else { return -1 }
        return Double(after - before) / Double(calls)
    }

    /// The 1-minute load average from `/proc/loadavg`, or nil where there is none.
    static func loadAverage() -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
              let first = s.split(separator: " ").first else { return nil }
        return Double(first)
    }

    /// Runs `body` with the kernels limited to `threads` threads.
    static func withThreads<T>(_ threads: Int, _ body: () throws -> T) rethrows -> T {
        try Parallel.$threadLimit.withValue(threads) { try body() }
    }

    static func fmt(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }

    /// Figure lines `  <name>  <ms> ms` aligned on the name column.
    static func figureLines(_ figures: [(String, Double)]) -> [String] {
        let width = (figures.map(\.0.count).max() ?? 0) + 2
        return figures.map { "  \($0.0)\(String(repeating: " ", count: width - $0.0.count))\(fmt($0.1)) ms" }
    }

    /// Writes named tensors (weights, inputs, first-step outputs) as F32 safetensors for `Benchmarks/compare_peft.py`.
    static func dump(_ tensors: [String: Tensor], to path: String) throws {
        do { try Safetensors.write(tensors, to: URL(fileURLWithPath: path)) } catch {
            throw CLIError.runtime("cannot write \(path): \(error)")
        }
    }

    /// Task ids as a float tensor (safetensors dumps are F32 only). // [N]
    static func taskTensor(_ ids: [Int]) -> Tensor { Tensor(ids.map(Float.init), shape: [ids.count]) }

    /// The most elements a benchmark lets one tensor have (1 GiB of floats).
    static let elementLimit = 1 << 28

    /// A usage error for the first of `tensors` (what, element count) above `elementLimit`.
    static func checkSizes(_ tensors: [(String, Int)], _ args: ParsedArguments) throws {
        for (what, count) in tensors where count > elementLimit {
            throw CLIError.usage("\(what) would have \(count) elements; the limit is \(elementLimit)", hint: args.hint)
        }
    }

    /// The load average as a JSON figure (`null` where there is none).
    static func loadField(_ load: Double?) -> JSONField { load.map { .fixed($0, digits: 2) } ?? .null }
}
