/// Elementwise operations: unary maps, binary ops with NumPy broadcasting, scalar forms, comparisons and `where`.
extension Tensor {
    // MARK: Kernels

    /// Elements from which the contiguous loops of `map` and `zipMap` (residual adds, dropout masks, scalings) split
    /// among the threads, one contiguous part per thread.
    package static let splitThreshold = 1 << 17

    /// Applies `f` to every element; the result is contiguous with the same shape. With `split`, `f` runs on several
    /// threads at once over contiguous tensors of `splitThreshold` elements or more (so it must be a pure function).
    @inline(__always)
    public func map(split: Bool = false, _ f: (Float) -> Float) -> Tensor {
        var out = Tensor.uninitializedScalars(count)        // both loops below write every element
        out.withUnsafeMutableBufferPointer { o in
            storage.withUnsafeBufferPointer { s in
                let src = s.baseAddress!, dst = o.baseAddress!
                if isContiguous {
                    let base = src + offset
                    Parallel.forEachPart(count: o.count, work: split ? o.count : 0, threshold: Tensor.splitThreshold) { part in
                        for i in part { dst[i] = f(base[i]) }
                    }
                } else {
                    stridedPairLoop(shape: shape, stridesA: strides, offsetA: offset, stridesB: strides, offsetB: offset) { n, pa, sa, _, _, po in
                        var p = pa
                        for j in 0..<n { dst[po + j] = f(src[p]); p += sa }
                    }
                }
            }
        }
        return Tensor(out, shape: shape)
    }

    /// Combines `a` and `b` elementwise after broadcasting them to a common shape (`split` as in `map`).
    @inline(__always)
    public static func zipMap(_ a: Tensor, _ b: Tensor, _ op: String, split: Bool = false,
                              _ f: (Float, Float) -> Float) throws -> Tensor {
        let shape = a.shape == b.shape ? a.shape : try broadcastShapes(a.shape, b.shape, op)
        let ea = a.shape == shape ? a : try a.expanded(to: shape)
        let eb = b.shape == shape ? b : try b.expanded(to: shape)
        var out = Tensor.uninitializedScalars(elementCount(shape))   // both loops below write every element
        withStorages(ea, eb, writing: &out) { sa, sb, o in
            let x = sa.baseAddress!, y = sb.baseAddress!, dst = o.baseAddress!
            if ea.isContiguous && eb.isContiguous {
                let xa = x + ea.offset, yb = y + eb.offset
                Parallel.forEachPart(count: o.count, work: split ? o.count : 0, threshold: Tensor.splitThreshold) { part in
                    for i in part { dst[i] = f(xa[i], yb[i]) }
                }
                return
            }
            stridedPairLoop(shape: shape, stridesA: ea.strides, offsetA: ea.offset,
                            stridesB: eb.strides, offsetB: eb.offset) { n, pa, da, pb, db, po in
                var i = pa, j = pb
                for k in 0..<n { dst[po + k] = f(x[i], y[j]); i += da; j += db }
            }
        }
        return Tensor(out, shape: shape)
    }

    // MARK: Binary operators (broadcasting)

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try zipMap(a, b, "add", split: true) { $0 + $1 } }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try zipMap(a, b, "sub", split: true) { $0 - $1 } }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try zipMap(a, b, "mul", split: true) { $0 * $1 } }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try zipMap(a, b, "div", split: true) { $0 / $1 } }

    /// Elementwise maximum / minimum of two tensors (broadcasting).
    public static func maximum(_ a: Tensor, _ b: Tensor) throws -> Tensor { try zipMap(a, b, "maximum", split: true) { Swift.max($0, $1) } }
    public static func minimum(_ a: Tensor, _ b: Tensor) throws -> Tensor { try zipMap(a, b, "minimum", split: true) { Swift.min($0, $1) } }

    // MARK: Scalar forms

    public static func + (a: Tensor, s: Float) -> Tensor { a.map(split: true) { $0 + s } }
    public static func + (s: Float, a: Tensor) -> Tensor { a.map(split: true) { s + $0 } }
    public static func - (a: Tensor, s: Float) -> Tensor { a.map(split: true) { $0 - s } }
    public static func - (s: Float, a: Tensor) -> Tensor { a.map(split: true) { s - $0 } }
    public static func * (a: Tensor, s: Float) -> Tensor { a.map(split: true) { $0 * s } }
    public static func * (s: Float, a: Tensor) -> Tensor { a.map(split: true) { s * $0 } }
    public static func / (a: Tensor, s: Float) -> Tensor { a.map(split: true) { $0 / s } }
    public static func / (s: Float, a: Tensor) -> Tensor { a.map(split: true) { s / $0 } }
    public static prefix func - (a: Tensor) -> Tensor { a.map(split: true) { -$0 } }

    // MARK: Unary maths

    public func exp() -> Tensor { map { _expf($0) } }
    public func log() -> Tensor { map { _logf($0) } }
    public func sqrt() -> Tensor { map { $0.squareRoot() } }
    public func abs() -> Tensor { map { Swift.abs($0) } }
    public func squared() -> Tensor { map { $0 * $0 } }
    public func pow(_ p: Float) -> Tensor { map { _powf($0, p) } }
    public func tanh() -> Tensor { map { _tanhf($0) } }
    /// `1 / (1 + e^-x)`, computed without overflow for large |x|.
    public func sigmoid() -> Tensor { map(Tensor.sigmoid) }
    public func relu() -> Tensor { map { $0 > 0 ? $0 : 0 } }
    /// Clamps every element into `[low, high]`.
    public func clamped(min low: Float = -.infinity, max high: Float = .infinity) -> Tensor {
        map { Swift.min(Swift.max($0, low), high) }
    }

    @inlinable @inline(__always)
    package static func sigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + _expf(-x)) }
        let e = _expf(x)
        return e / (1 + e)
    }

    // MARK: Comparisons (1 where true, 0 where false) and selection

    public func greater(_ other: Tensor) throws -> Tensor { try Tensor.zipMap(self, other, "greater") { $0 > $1 ? 1 : 0 } }
    public func less(_ other: Tensor) throws -> Tensor { try Tensor.zipMap(self, other, "less") { $0 < $1 ? 1 : 0 } }
    public func equal(_ other: Tensor) throws -> Tensor { try Tensor.zipMap(self, other, "equal") { $0 == $1 ? 1 : 0 } }
    public func greater(_ s: Float) -> Tensor { map { $0 > s ? 1 : 0 } }
    public func less(_ s: Float) -> Tensor { map { $0 < s ? 1 : 0 } }

    /// `condition != 0 ? a : b` elementwise, all three broadcast together.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let shape = try broadcastShapes(try broadcastShapes(condition.shape, a.shape, "where"), b.shape, "where")
        let c = try condition.expanded(to: shape).scalars
        let x = try a.expanded(to: shape).scalars, y = try b.expanded(to: shape).scalars
        var out = [Float](repeating: 0, count: c.count)
        for i in 0..<c.count { out[i] = c[i] != 0 ? x[i] : y[i] }
        return Tensor(out, shape: shape)
    }

    /// Adds `other` (broadcast to `self.shape`) into `self` in place. Used to accumulate gradients.
    public mutating func add(_ other: Tensor) throws {
        guard let _ = try? other.expanded(to: shape) else {
            throw TensorError("add_", "cannot add \(fmt(other.shape)) into \(fmt(shape)) in place")
        }
        let o = try other.expanded(to: shape)
        if o.isContiguous {
            withUnsafeMutableElements { dst in
                o.storage.withUnsafeBufferPointer { src in
                    guard let d = dst.baseAddress, let s0 = src.baseAddress else { return }
                    let s = s0 + o.offset, n = dst.count
                    // Large sums (a layer's output and its update, two gradients of an activation) are split among
                    // the threads: one pass over memory, each worker on its own contiguous part.
                    Parallel.forEachPart(count: n, work: n, threshold: 1 << 20,
                                         threads: Swift.min(Parallel.currentThreads, n >> 19)) { part in
                        for i in part { d[i] += s[i] }
                    }
                }
            }
        } else {
            let v = o.scalars
            withUnsafeMutableElements { dst in for i in 0..<dst.count { dst[i] += v[i] } }
        }
    }
}

/// Which formula `gelu` uses (PyTorch's `approximate="none"` / `"tanh"`).
public enum GELUApproximation: String, Sendable, Codable {
    case none
    case tanh
}
