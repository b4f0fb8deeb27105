import Dispatch
import Foundation
import PolyPEFT

// matmul-bench [m n k [threads]]: times the raw kernel `Gemm.multiply` (no Tensor, no allocation per run) on
// row-major operands, best of 10 runs after a warm-up, and prints `gflops=<number>` last.
let args = CommandLine.arguments.dropFirst().map { Int($0) }
guard args.allSatisfy({ $0 != nil && $0! > 0 }), args.count == 0 || args.count >= 3 else {
    FileHandle.standardError.write(Data("usage: matmul-bench [m n k [threads]]  (positive integers)\n".utf8))
    exit(64)
}
let m = args.count >= 3 ? args[0]! : 512, n = args.count >= 3 ? args[1]! : 512, k = args.count >= 3 ? args[2]! : 512
let threads = args.count >= 4 ? args[3]! : Parallel.defaultThreads

var rng = Xoshiro256(seed: 1)
let a = Tensor.uniform([m, k], low: -1, high: 1, using: &rng).scalars  // a: [m, k]
let b = Tensor.uniform([k, n], low: -1, high: 1, using: &rng).scalars  // b: [k, n]
var c = [Float](repeating: 0, count: m * n)                            // c: [m, n]

func once(_ c: inout [Float]) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    c.withUnsafeMutableBufferPointer { cp in
        Gemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: k, colStrideA: 1, b: b, rowStrideB: n, colStrideB: 1,
                      c: cp.baseAddress!, ldc: n, accumulate: false, threads: threads)
    }
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}
_ = once(&c)
var best = Double.infinity
for _ in 0..<10 { best = min(best, once(&c)) }
let gflops = 2 * Double(m) * Double(n) * Double(k) / (best * 1e6)
print("Gemm.multiply [\(m),\(k)] x [\(k),\(n)] threads \(threads): \(String(format: "%.3f", best)) ms")
print("gflops=\(String(format: "%.3f", gflops))")
