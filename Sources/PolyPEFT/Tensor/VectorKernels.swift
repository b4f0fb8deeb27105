/// Level-1 vector kernels over raw pointers (BLAS `axpy`, `dot`, `scal`), eight lanes at a time with FMA where the
/// target has it (`fma8`), for the per-row loops of the routing kernels.
///
/// ```
/// axpy:  y[i] += a * x[i]          i in 0..<n
/// dot:   sum_i x[i] * y[i]         (eight partial sums, then the tail; not the left-to-right order of a plain loop)
/// fill:  y[i]  = a * x[i]
/// ```
/// `reference*` are the plain loops kept as the test oracle.
enum Vec {
    @inline(__always)
    static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        var i = 0
        let av = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            store8(fma8(load8(UnsafePointer(y + i)), av, load8(x + i)), y + i)
            i += 8
        }
        while i < n {
            y[i] += a * x[i]
            i += 1
        }
    }

    @inline(__always)
    static func dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        var i = 0
        var acc = SIMD8<Float>(repeating: 0)
        while i + 8 <= n {
            acc = fma8(acc, load8(x + i), load8(y + i))
            i += 8
        }
        var s = acc.sum()
        while i < n {
            s += x[i] * y[i]
            i += 1
        }
        return s
    }

    @inline(__always)
    static func fill(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        var i = 0
        let av = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            store8(av * load8(x + i), y + i)
            i += 8
        }
        while i < n {
            y[i] = a * x[i]
            i += 1
        }
    }

    static func referenceAxpy(_ a: Float, _ x: [Float], _ y: inout [Float]) {
        for i in y.indices { y[i] += a * x[i] }
    }

    static func referenceDot(_ x: [Float], _ y: [Float]) -> Float {
        var s: Double = 0
        for i in x.indices { s += Double(x[i]) * Double(y[i]) }
        return Float(s)
    }
}
