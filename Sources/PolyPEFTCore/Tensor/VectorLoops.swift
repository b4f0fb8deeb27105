/// The loops of the elementwise kernels: a function of 8 lanes applied over `0..<count`, the last partial group
/// padded through registers, the groups split among the threads when there are `threshold` elements or more.
///
/// ```
/// y[i] = f(a[i])                  simdMap
/// y[i] = f(a[i], b[i])            simdZip
/// ```
/// Pointers must be valid for `count` floats; `y` may be one of the inputs (each group is read before it is
/// written). Workers take contiguous ranges of groups, so they write disjoint memory.
enum VectorLoops {
    /// Elements from which a map with an `exp` or `erf` per element splits among the threads.
    static let costlyThreshold = Parallel.elementwiseThreshold
}

/// Loads `n < 8` floats into the low lanes of a vector (the other lanes 0).
@inline(__always)
func loadPartial8(_ p: UnsafePointer<Float>, _ n: Int) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    for l in 0..<n { v[l] = p[l] }
    return v
}

/// Stores the low `n < 8` lanes of `v`.
@inline(__always)
func storePartial8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for l in 0..<n { p[l] = v[l] }
}

@inline(__always)
package func simdMap(count n: Int, threshold: Int, _ a: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                     _ f: (SIMD8<Float>) -> SIMD8<Float>) {
    Parallel.forEachPart(count: (n + 7) / 8, work: n, threshold: threshold) { groups in
        for g in groups {
            let i = g * 8
            if i + 8 <= n { store8(f(load8(a + i)), y + i) } else { storePartial8(f(loadPartial8(a + i, n - i)), y + i, n - i) }
        }
    }
}

@inline(__always)
package func simdZip(count n: Int, threshold: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     _ y: UnsafeMutablePointer<Float>, _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) {
    Parallel.forEachPart(count: (n + 7) / 8, work: n, threshold: threshold) { groups in
        for g in groups {
            let i = g * 8
            if i + 8 <= n {
                store8(f(load8(a + i), load8(b + i)), y + i)
            } else {
                storePartial8(f(loadPartial8(a + i, n - i), loadPartial8(b + i, n - i)), y + i, n - i)
            }
        }
    }
}

/// The largest element of a row (-inf for an empty one), 8 lanes at a time.
@inline(__always)
func rowMax8(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = SIMD8<Float>(repeating: -.infinity)
    var j = 0
    while j + 8 <= n { let v = load8(row + j); m.replace(with: v, where: v .> m); j += 8 }
    var s = m.max()
    while j < n { s = Swift.max(s, row[j]); j += 1 }
    return s
}

/// `row[j] = exp(row[j] - shift)` over a row, returning the sum of the new values.
@inline(__always)
func rowExpShifted8(_ row: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    var acc = SIMD8<Float>()
    let m = SIMD8<Float>(repeating: shift)
    var j = 0
    while j + 8 <= n {
        let e = exp8(load8(row + j) - m)
        store8(e, row + j)
        acc += e
        j += 8
    }
    if j < n {
        let e = exp8(loadPartial8(row + j, n - j) - m)
        for l in 0..<(n - j) { row[j + l] = e[l]; acc[l] += e[l] }
    }
    return acc.sum()
}

/// `sum_j exp(row[j] - shift)` over a row, the row left as it is.
@inline(__always)
func rowSumExpShifted8(_ row: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
    var acc = SIMD8<Float>()
    let m = SIMD8<Float>(repeating: shift)
    var j = 0
    while j + 8 <= n { acc += exp8(load8(row + j) - m); j += 8 }
    if j < n {
        let e = exp8(loadPartial8(row + j, n - j) - m)
        for l in 0..<(n - j) { acc[l] += e[l] }
    }
    return acc.sum()
}

/// `row[j] *= s` over a row.
@inline(__always)
func rowScale8(_ row: UnsafeMutablePointer<Float>, _ n: Int, by s: Float) {
    var j = 0
    while j + 8 <= n { store8(load8(row + j) * s, row + j); j += 8 }
    while j < n { row[j] *= s; j += 1 }
}

/// `sum_j a[j]` over a row, 8 lanes at a time.
@inline(__always)
func rowSum8(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var j = 0
    while j + 8 <= n { acc += load8(a + j); j += 8 }
    var s = acc.sum()
    while j < n { s += a[j]; j += 1 }
    return s
}
