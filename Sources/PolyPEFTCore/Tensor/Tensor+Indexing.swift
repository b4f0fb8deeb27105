/// Indexing: selecting rows by integer ids, scatter-add (its adjoint), gather, concatenation and split.
extension Tensor {
    /// Checks integer ids against an extent.
    static func checkIndices(_ indices: [Int], extent: Int, _ op: String, axis: Int, shape: [Int]) throws {
        for (i, id) in indices.enumerated() where id < 0 || id >= extent {
            throw TensorError(op, "index \(id) at position \(i) out of range 0..<\(extent) for axis \(axis) of \(fmt(shape))")
        }
    }

    /// The slices at `indices` along `axis`, stacked in that order (PyTorch `index_select`; an embedding lookup is
    /// `weight.indexSelect(axis: 0, indices)`).
    ///
    /// ```
    /// out[..., i, ...] = self[..., indices[i], ...]      // out: shape with shape[axis] replaced by indices.count
    /// ```
    public func indexSelect(axis: Int = 0, _ indices: [Int]) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "index_select")
        try Tensor.checkIndices(indices, extent: shape[a], "index_select", axis: a, shape: shape)
        let src = try permutedAxisFirst(a).contiguous()
        let inner = src.count / Swift.max(shape[a], 1)
        var out = [Float](repeating: 0, count: indices.count * inner)
        src.storage.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                for (i, id) in indices.enumerated() {
                    (o.baseAddress! + i * inner).update(from: s.baseAddress! + id * inner, count: inner)
                }
            }
        }
        var movedShape = src.shape
        movedShape[0] = indices.count
        return try Tensor(out, shape: movedShape).permutedAxisFirstInverse(a)
    }

    /// The adjoint of `indexSelect`: a tensor of `self.shape` where slice `indices[i]` of `source` along `axis` is
    /// added into slice `indices[i]` of `self` (repeated indices accumulate). PyTorch `index_add`.
    public func indexAdd(axis: Int = 0, _ indices: [Int], _ source: Tensor) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "index_add")
        try Tensor.checkIndices(indices, extent: shape[a], "index_add", axis: a, shape: shape)
        var expected = shape
        expected[a] = indices.count
        guard source.shape == expected else {
            throw TensorError("index_add", "source \(fmt(source.shape)) does not match \(fmt(expected)) for \(indices.count) indices into \(fmt(shape))")
        }
        var dst = try permutedAxisFirst(a).contiguous()
        let src = try source.permutedAxisFirst(a).contiguous().scalars
        let inner = dst.count / Swift.max(shape[a], 1)
        dst.withUnsafeMutableElements { d in
            for (i, id) in indices.enumerated() {
                for j in 0..<inner { d[id * inner + j] += src[i * inner + j] }
            }
        }
        return try dst.permutedAxisFirstInverse(a)
    }

    /// PyTorch `gather`: `out[i][j] = self[i][index[i][j]]` along `axis` (shown for axis 1 of a matrix); `index`
    /// has the output's shape, given as row-major integers.
    public func gather(axis: Int, index: [Int], shape indexShape: [Int]) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "gather")
        guard indexShape.count == rank, Tensor.elementCount(indexShape) == index.count else {
            throw TensorError("gather", "index of shape \(fmt(indexShape)) with \(index.count) values does not fit \(fmt(shape))")
        }
        for d in 0..<rank where d != a && indexShape[d] > shape[d] {
            throw TensorError("gather", "index shape \(fmt(indexShape)) exceeds \(fmt(shape)) on axis \(d)")
        }
        try Tensor.checkIndices(index, extent: shape[a], "gather", axis: a, shape: shape)
        var out = [Float](repeating: 0, count: index.count)
        let istr = Tensor.contiguousStrides(indexShape)
        for flat in 0..<index.count {
            var p = offset, rem = flat
            for d in 0..<rank {
                let i = rem / istr[d]
                rem %= istr[d]
                p += (d == a ? index[flat] : i) * strides[d]
            }
            out[flat] = storage[p]
        }
        return Tensor(out, shape: indexShape)
    }

    /// Joins tensors along `axis`; all other extents must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("concat", "needs at least one tensor") }
        let a = try normalizeAxis(axis, rank: first.rank, "concat")
        for t in tensors.dropFirst() {
            guard t.rank == first.rank,
                  zip(t.shape, first.shape).enumerated().allSatisfy({ $0.offset == a || $0.element.0 == $0.element.1 }) else {
                throw TensorError("concat", "shapes \(fmt(first.shape)) and \(fmt(t.shape)) differ outside axis \(a)")
            }
        }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let outer = first.shape[..<a].reduce(1, *)
        let innerPer = tensors.map { $0.shape[a...].reduce(1, *) }
        let parts = tensors.map { $0.scalars }
        var out = [Float]()
        out.reserveCapacity(elementCount(outShape))
        for o in 0..<outer {
            for (p, n) in zip(parts, innerPer) { out.append(contentsOf: p[(o * n)..<((o + 1) * n)]) }
        }
        return Tensor(out, shape: outShape)
    }

    /// Splits into views of `sizes` along `axis` (the sizes must add up to the extent).
    public func split(sizes: [Int], axis: Int = 0) throws -> [Tensor] {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "split")
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == shape[a] else {
            throw TensorError("split", "sizes \(fmt(sizes)) do not add up to extent \(shape[a]) of axis \(a) in \(fmt(shape))")
        }
        var start = 0
        return try sizes.map { n in
            defer { start += n }
            return try sliced(axis: a, start: start, end: start + n)
        }
    }

    /// Stacks equally shaped tensors along a new axis.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("stack", "needs at least one tensor") }
        for t in tensors where t.shape != first.shape {
            throw TensorError("stack", "shapes \(fmt(first.shape)) and \(fmt(t.shape)) differ")
        }
        return try concatenate(tensors.map { try $0.unsqueezed(axis) }, axis: axis)
    }

    func permutedAxisFirst(_ a: Int) throws -> Tensor {
        var order = Array(0..<rank)
        order.remove(at: a)
        order.insert(a, at: 0)
        return try permuted(order)
    }

    func permutedAxisFirstInverse(_ a: Int) throws -> Tensor {
        var order = Array(1..<rank)
        order.insert(0, at: a)
        return try permuted(order)
    }
}
