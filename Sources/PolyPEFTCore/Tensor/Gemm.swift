/// Single-precision matrix multiply on raw buffers, for `Tensor.matmul`, autograd and layers.
///
/// ```
/// C[i, j] (+)= sum_p A[i, p] * B[p, j]        A: [m, k], B: [k, n], C: [m, n]
/// A[i, p] = a[i * rowStrideA + p * colStrideA]
/// B[p, j] = b[p * rowStrideB + j * colStrideB]
/// C[i, j] = c[i * ldc + j]
/// ```
///
/// A and B are read through (row stride, column stride) pairs, so a transposed operand is the same buffer with the
/// two strides swapped, a sliced one has larger strides, and a broadcast one has a zero stride: nothing is copied
/// before the kernel's own packing. C is row-major with leading dimension `ldc >= n`.
///
/// Three kernels sit behind `multiply`, chosen by shape (`Gemm.kernel`; every selection rule is in
/// GemmSelection.swift):
/// - `GemmPacked` (general): GotoBLAS-style cache blocking, A and B packed into panels, a 6x16 register tile.
/// - `GemmDirect` (skinny): `n <= 16` or `m <= 8` (LoRA's rank-r products and their gradients): no packing of the big
///   operand, an 8x8 register tile reading A straight through its strides.
/// - `reference`: the naive triple loop, kept as the test oracle.
public enum Gemm {
    /// `C = A·B` (or `C += A·B` when `accumulate`), with up to `threads` threads.
    ///
    /// - Parameters:
    ///   - m, n, k: the extents; any may be 0 (with `k == 0`, C is zeroed unless `accumulate`).
    ///   - a, rowStrideA, colStrideA: A `[m, k]`; strides are in elements and must be >= 0.
    ///   - b, rowStrideB, colStrideB: B `[k, n]`.
    ///   - c, ldc: C `[m, n]` row-major with row stride `ldc >= n`; must not overlap A or B.
    ///   - accumulate: add into C (gradient accumulation) instead of overwriting it. When false C is only written,
    ///     so it may be uninitialised memory.
    ///   - threads: the most threads to use (>= 1); small products use one.
    ///   - tail: a per-row low-rank term added to C as well (`GemmRowTail`); the packed kernel fuses it into its
    ///     register tiles, the others add it after the product.
    ///   - level: the widest vectors the packed kernel may use (`SIMDLevel`); callers that fork pass the level they
    ///     read before forking.
    public static func multiply(m: Int, n: Int, k: Int,
                                a: UnsafePointer<Float>, rowStrideA: Int, colStrideA: Int,
                                b: UnsafePointer<Float>, rowStrideB: Int, colStrideB: Int,
                                c: UnsafeMutablePointer<Float>, ldc: Int,
                                accumulate: Bool, threads: Int) {
        multiply(m: m, n: n, k: k, a: a, rowStrideA: rowStrideA, colStrideA: colStrideA, b: b, rowStrideB: rowStrideB,
                 colStrideB: colStrideB, c: c, ldc: ldc, accumulate: accumulate, threads: threads, tail: nil)
    }

    package static func multiply(m: Int, n: Int, k: Int,
                         a: UnsafePointer<Float>, rowStrideA: Int, colStrideA: Int,
                         b: UnsafePointer<Float>, rowStrideB: Int, colStrideB: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int,
                         accumulate: Bool, threads: Int, tail: GemmRowTail?, level: SIMDLevel = .current) {
        precondition(m >= 0 && n >= 0 && k >= 0 && ldc >= n, "Gemm.multiply: bad extents m=\(m) n=\(n) k=\(k) ldc=\(ldc)")
        precondition(threads >= 1, "Gemm.multiply: threads must be >= 1, got \(threads)")
        if m == 0 || n == 0 { return }
        let workers = Gemm.workers(m: m, n: n, k: k, threads: threads)
        switch Gemm.kernel(m: m, n: n, k: k) {
        case .packed:
            GemmPacked.multiply(m: m, n: n, k: k, a: a, rsA: rowStrideA, csA: colStrideA,
                                b: b, rsB: rowStrideB, csB: colStrideB, c: c, ldc: ldc,
                                accumulate: accumulate, workers: workers, tail: tail, tile: GemmPacked.Tile.for(level))
            return
        case .zeroFill:
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        case .direct:
            GemmDirect.multiply(m: m, n: n, k: k, a: a, rsA: rowStrideA, csA: colStrideA,
                                b: b, rsB: rowStrideB, csB: colStrideB, c: c, ldc: ldc,
                                accumulate: accumulate, workers: workers)
        }
        // The kernels other than the packed one add the row tail after the product.
        if let tail {
            Parallel.forEachPart(count: m, work: m * n * tail.rank, threshold: parallelThreshold, threads: threads) { rows in
                tail.apply(rows: rows, cols: 0..<n, c: c, ldc: ldc)
            }
        }
    }

    /// The oracle: the naive triple loop, accumulating each dot product in `Double`. Same contract as `multiply`.
    public static func reference(m: Int, n: Int, k: Int,
                                 a: UnsafePointer<Float>, rowStrideA: Int, colStrideA: Int,
                                 b: UnsafePointer<Float>, rowStrideB: Int, colStrideB: Int,
                                 c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    s += Double(a[i * rowStrideA + p * colStrideA]) * Double(b[p * rowStrideB + j * colStrideB])
                }
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + Float(s) : Float(s)
            }
        }
    }
}

// MARK: SIMD helpers shared by the kernels

/// `c + a * b`, one `vfmadd231ps ymm` when the target has FMA (`POLYPEFT_FMA`, see Package.swift); otherwise an
/// unfused multiply and add (`addingProduct` would call libm's `fmaf` per lane there, ten times slower).
@inlinable @inline(__always)
package func fma8(_ c: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    #if POLYPEFT_FMA
    return c.addingProduct(a, b)
    #else
    return a * b + c
    #endif
}

@inlinable @inline(__always)
package func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inlinable @inline(__always)
package func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Stores `v` at `p`, or adds it to what is there.
@inline(__always)
func update8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, add: Bool) {
    store8(add ? load8(p) + v : v, p)
}

/// A hint to the CPU to bring the cache line at `p` into all cache levels (`prefetcht0` on x86-64, `prfm pldl1keep`
/// on arm64): never faults, whatever the address, and has no effect on results. Swift has no prefetch function, so
/// this binds LLVM's `llvm.prefetch` intrinsic by name (arguments: read, highest locality, data cache).
@_silgen_name("llvm.prefetch.p0")
func llvmPrefetch(_ address: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ dataCache: Int32)

@inline(__always)
func prefetch(_ p: UnsafePointer<Float>) { llvmPrefetch(UnsafeRawPointer(p), 0, 3, 1) }

@inline(__always)
func prefetch(_ p: UnsafeMutablePointer<Float>) { llvmPrefetch(UnsafeRawPointer(p), 0, 3, 1) }

/// Rounds `x` up to a multiple of `m`.
@inline(__always)
func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

/// `sum_i a[i] b[i]` over `count` floats with two eight-lane accumulators (a different summation order from a
/// plain loop: the result may differ in the last bits).
@inlinable @inline(__always)
package func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= count {
        acc0 = fma8(acc0, load8(a + i), load8(b + i))
        acc1 = fma8(acc1, load8(a + i + 8), load8(b + i + 8))
        i += 16
    }
    if i + 8 <= count {
        acc0 = fma8(acc0, load8(a + i), load8(b + i))
        i += 8
    }
    var s = hsum(acc0 + acc1)
    while i < count {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// The sum of the eight lanes by halving (3 vector adds), instead of `sum()`'s seven dependent scalar adds.
@inlinable @inline(__always)
package func hsum(_ v: SIMD8<Float>) -> Float {
    let h4 = v.lowHalf + v.highHalf
    let h2 = h4.lowHalf + h4.highHalf
    return h2[0] + h2[1]
}

extension Gemm {
    /// `C[i, :] += v` for every row `i < rows` (a layer's bias): `C` `[rows, width]` row-major, `v` `[width]`.
    package static func addRowVector(_ v: UnsafePointer<Float>, rows: Int, into c: UnsafeMutablePointer<Float>, width: Int) {
        var p = c
        for _ in 0..<rows {
            for j in 0..<width { p[j] += v[j] }
            p += width
        }
    }
}
