/// Reductions along any set of axes, with or without kept dimensions.
extension Tensor {
    /// Normalises and de-duplicates `axes` (nil = all axes).
    func reductionAxes(_ axes: [Int]?, _ op: String) throws -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let normalized = try axes.map { try Tensor.normalizeAxis($0, rank: rank, op) }
        guard Set(normalized).count == normalized.count else {
            throw TensorError(op, "repeated axis in \(fmt(axes)) for \(fmt(shape))")
        }
        return normalized.sorted()
    }

    /// The shape after reducing `axes`: extents set to 1 (`keepDims`) or removed.
    static func reducedShape(_ shape: [Int], _ axes: [Int], keepDims: Bool) -> [Int] {
        keepDims ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                 : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// Folds every input element into its output cell: `acc = f(acc, x)` starting from `initial`.
    ///
    /// ```
    /// out[i with reduced axes set to 0] = fold(f, initial, x[i] for i over the reduced axes)
    /// ```
    @inline(__always)
    func reduce(_ axes: [Int]?, keepDims: Bool, _ op: String, initial: Float, _ f: (Float, Float) -> Float) throws -> Tensor {
        let ax = try reductionAxes(axes, op)
        let kept = Tensor.reducedShape(shape, ax, keepDims: true)
        var out = [Float](repeating: initial, count: Tensor.elementCount(kept))
        // The output seen as a view of the input's shape: stride 0 along the reduced axes.
        var outStrides = Tensor.contiguousStrides(kept)
        for a in ax { outStrides[a] = 0 }
        out.withUnsafeMutableBufferPointer { o in
            storage.withUnsafeBufferPointer { s in
                let src = s.baseAddress!, dst = o.baseAddress!
                stridedPairLoop(shape: shape, stridesA: strides, offsetA: offset, stridesB: outStrides, offsetB: 0) { n, pa, sa, pb, sb, _ in
                    var i = pa, j = pb
                    if sb == 0 {
                        var acc = dst[j]
                        for _ in 0..<n { acc = f(acc, src[i]); i += sa }
                        dst[j] = acc
                    } else {
                        for _ in 0..<n { dst[j] = f(dst[j], src[i]); i += sa; j += sb }
                    }
                }
            }
        }
        return Tensor(out, shape: Tensor.reducedShape(shape, ax, keepDims: keepDims))
    }

    /// Sum over `axes` (nil: all).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        try reduce(axes, keepDims: keepDims, "sum", initial: 0, +)
    }

    /// Mean over `axes` (nil: all).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let ax = try reductionAxes(axes, "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return try sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Maximum over `axes` (nil: all). Reducing an empty axis gives -inf.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        try reduce(axes, keepDims: keepDims, "max", initial: -.infinity) { Swift.max($0, $1) }
    }

    /// Minimum over `axes` (nil: all). Reducing an empty axis gives +inf.
    public func min(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        try reduce(axes, keepDims: keepDims, "min", initial: .infinity) { Swift.min($0, $1) }
    }

    /// Population variance (divide by n, as normalisation layers use) over `axes`.
    public func variance(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let m = try mean(axes: axes, keepDims: true)
        return try (self - m).squared().mean(axes: axes, keepDims: keepDims)
    }

    /// Sum of all elements as a scalar.
    public func sumAll() -> Float {
        withContiguousBuffer { b in b.reduce(0, +) }
    }

    /// `log(sum(exp(x)))` over `axis`, stabilised by the maximum.
    public func logsumexp(axis: Int = -1, keepDims: Bool = false) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "logsumexp")
        let m = try max(axes: [a], keepDims: true).map { $0.isFinite ? $0 : 0 }
        let s = try (self - m).exp().sum(axes: [a], keepDims: true).log()
        let r = try s + m
        return keepDims ? r : try r.squeezed(a)
    }

    /// Index of the largest element along `axis` (first on ties), as integers; shape is `shape` without `axis`.
    public func argmax(axis: Int = -1) throws -> (indices: [Int], shape: [Int]) {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "argmax")
        guard shape[a] > 0 else { throw TensorError("argmax", "axis \(a) of \(fmt(shape)) is empty") }
        var order = Array(0..<rank)
        order.remove(at: a)
        order.append(a)
        let moved = try permuted(order).scalars
        let n = shape[a], rows = moved.count / n
        var out = [Int](repeating: 0, count: rows)
        for r in 0..<rows {
            var best = moved[r * n], bi = 0
            for j in 1..<n where moved[r * n + j] > best { best = moved[r * n + j]; bi = j }
            out[r] = bi
        }
        return (out, order.dropLast().map { shape[$0] })
    }

    /// Sums `self` down to `target`, the inverse of broadcasting `target` up to `self.shape` (used by backward of
    /// broadcast ops).
    public func reduced(toShape target: [Int]) throws -> Tensor {
        if shape == target { return self }
        guard target.count <= rank else {
            throw TensorError("sum_to", "cannot reduce \(fmt(shape)) to higher-rank \(fmt(target))")
        }
        let lead = rank - target.count
        var axes = Array(0..<lead)
        for d in 0..<target.count where target[d] != shape[lead + d] {
            guard target[d] == 1 else { throw TensorError("sum_to", "cannot reduce \(fmt(shape)) to \(fmt(target))") }
            axes.append(lead + d)
        }
        return try sum(axes: axes, keepDims: true).reshaped(target)
    }
}

extension Tensor {
    /// The row-major index of the first NaN or infinite element, or nil when every element is finite.
    public func firstNonFiniteIndex() -> Int? {
        withContiguousBuffer { b in b.firstIndex { !$0.isFinite } }
    }

    /// The first NaN or infinity, as error messages say it (`"holds nan at flat index 3"`), or nil when every element
    /// is finite.
    public func nonFiniteNote() -> String? {
        withContiguousBuffer { b in b.firstIndex { !$0.isFinite }.map { "holds \(b[$0]) at flat index \($0)" } }
    }
}
