/// Views: new shapes and strides over the same storage, without copying (except `reshaped` when the layout does not
/// allow a view, which copies explicitly).
extension Tensor {
    /// Normalises a possibly negative axis (`-1` is the last) for a tensor of rank `rank`.
    static func normalizeAxis(_ axis: Int, rank: Int, _ op: String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw TensorError(op, "axis \(axis) out of range for rank \(rank)") }
        return a
    }

    /// The same elements with a new shape; one extent may be `-1` (inferred).
    ///
    /// A view when the strides allow it (always for contiguous tensors); otherwise a contiguous copy.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var target = newShape
        let unknown = target.indices.filter { target[$0] == -1 }
        guard unknown.count <= 1, target.allSatisfy({ $0 >= -1 }) else {
            throw TensorError("reshape", "invalid target shape \(fmt(newShape)) for \(fmt(shape))")
        }
        if let u = unknown.first {
            let known = target.enumerated().filter { $0.offset != u }.reduce(1) { $0 * $1.element }
            guard known > 0, count % known == 0 else {
                throw TensorError("reshape", "cannot reshape \(fmt(shape)) (\(count) elements) into \(fmt(newShape))")
            }
            target[u] = count / known
        }
        guard Tensor.elementCount(target) == count else {
            throw TensorError("reshape", "cannot reshape \(fmt(shape)) (\(count) elements) into \(fmt(newShape))")
        }
        if let s = viewStrides(for: target) {
            return Tensor(storage: storage, shape: target, strides: s, offset: offset)
        }
        return Tensor(scalars, shape: target)
    }

    /// Strides that express `target` as a view of `self`, or nil when a copy is needed (PyTorch's `computeStride`).
    func viewStrides(for target: [Int]) -> [Int]? {
        if count == 0 { return Tensor.contiguousStrides(target) }
        var newStrides = [Int](repeating: 0, count: target.count)
        var viewD = target.count - 1
        var chunkBase = strides.last ?? 1
        var tensorNumel = 1, viewNumel = 1
        var tensorD = rank - 1
        while tensorD >= 0 {
            tensorNumel *= shape[tensorD]
            if tensorD == 0 || (shape[tensorD - 1] != 1 && strides[tensorD - 1] != tensorNumel * chunkBase) {
                while viewD >= 0 && (viewNumel < tensorNumel || target[viewD] == 1) {
                    newStrides[viewD] = viewNumel * chunkBase
                    viewNumel *= target[viewD]
                    viewD -= 1
                }
                if viewNumel != tensorNumel { return nil }
                if tensorD > 0 {
                    chunkBase = strides[tensorD - 1]
                    tensorNumel = 1
                    viewNumel = 1
                }
            }
            tensorD -= 1
        }
        if viewD != -1 { return nil }
        return newStrides
    }

    /// Reorders dimensions: result dimension `i` is source dimension `order[i]`.
    public func permuted(_ order: [Int]) throws -> Tensor {
        guard order.count == rank, Set(order) == Set(0..<rank) else {
            throw TensorError("permute", "order \(fmt(order)) is not a permutation of the \(rank) axes of \(fmt(shape))")
        }
        return Tensor(storage: storage, shape: order.map { shape[$0] }, strides: order.map { strides[$0] }, offset: offset)
    }

    /// Swaps two dimensions (default: the last two).
    public func transposed(_ a: Int = -2, _ b: Int = -1) throws -> Tensor {
        let a = try Tensor.normalizeAxis(a, rank: rank, "transpose"), b = try Tensor.normalizeAxis(b, rank: rank, "transpose")
        var order = Array(0..<rank)
        order.swapAt(a, b)
        return try permuted(order)
    }

    /// Matrix transpose of a rank-2 tensor (a view).
    public var T: Tensor {
        precondition(rank == 2, "T: needs a rank-2 tensor, got \(fmt(shape))")
        return Tensor(storage: storage, shape: [shape[1], shape[0]], strides: [strides[1], strides[0]], offset: offset)
    }

    /// Elements `start, start+step, ...` below `end` along `axis` (Python's `start:end:step`, step > 0).
    /// Negative `start`/`end` count from the end; both are clamped to the extent as in NumPy.
    public func sliced(axis: Int, start: Int = 0, end: Int? = nil, step: Int = 1) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "slice")
        guard step > 0 else { throw TensorError("slice", "step must be positive, got \(step)") }
        let n = shape[a]
        func clamp(_ i: Int) -> Int { let j = i < 0 ? i + n : i; return Swift.min(Swift.max(j, 0), n) }
        let s = clamp(start), e = clamp(end ?? n)
        let len = e > s ? (e - s + step - 1) / step : 0
        var newShape = shape, newStrides = strides
        newShape[a] = len
        newStrides[a] = strides[a] * step
        return Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset + (len > 0 ? s * strides[a] : 0))
    }

    /// The sub-tensor at `index` along `axis`, with that axis removed.
    public func selecting(axis: Int = 0, index: Int) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank, "select")
        guard index >= -shape[a] && index < shape[a] else {
            throw TensorError("select", "index \(index) out of range for axis \(a) of \(fmt(shape))")
        }
        let i = index < 0 ? index + shape[a] : index
        var newShape = shape, newStrides = strides
        newShape.remove(at: a)
        newStrides.remove(at: a)
        return Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset + i * strides[a])
    }

    /// Inserts a dimension of extent 1 at `axis` (which may equal `rank`, or be negative as in PyTorch).
    public func unsqueezed(_ axis: Int) throws -> Tensor {
        let a = try Tensor.normalizeAxis(axis, rank: rank + 1, "unsqueeze")
        var newShape = shape, newStrides = strides
        newShape.insert(1, at: a)
        newStrides.insert(a < rank ? strides[a] * shape[a] : 1, at: a)
        return Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset)
    }

    /// Removes dimensions of extent 1: `axis` only, or all of them when nil.
    public func squeezed(_ axis: Int? = nil) throws -> Tensor {
        if let axis {
            let a = try Tensor.normalizeAxis(axis, rank: rank, "squeeze")
            guard shape[a] == 1 else { throw TensorError("squeeze", "axis \(a) of \(fmt(shape)) has extent \(shape[a]), not 1") }
            var newShape = shape, newStrides = strides
            newShape.remove(at: a)
            newStrides.remove(at: a)
            return Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset)
        }
        let keep = shape.indices.filter { shape[$0] != 1 }
        return Tensor(storage: storage, shape: keep.map { shape[$0] }, strides: keep.map { strides[$0] }, offset: offset)
    }

    /// A broadcast view with the given shape (NumPy rules: leading axes are added, extents of 1 are stretched with
    /// stride 0).
    public func expanded(to target: [Int]) throws -> Tensor {
        guard target.count >= rank else {
            throw TensorError("expand", "cannot expand \(fmt(shape)) to lower rank \(fmt(target))")
        }
        let lead = target.count - rank
        var newStrides = [Int](repeating: 0, count: target.count)
        for d in 0..<target.count {
            if d < lead { continue }
            let e = shape[d - lead]
            if e == target[d] {
                newStrides[d] = strides[d - lead]
            } else if e == 1 {
                newStrides[d] = 0
            } else {
                throw TensorError("expand", "cannot expand \(fmt(shape)) to \(fmt(target))")
            }
        }
        return Tensor(storage: storage, shape: target, strides: newStrides, offset: offset)
    }

    /// The NumPy broadcast of two shapes, or a `TensorError` naming both.
    public static func broadcastShapes(_ a: [Int], _ b: [Int], _ op: String) throws -> [Int] {
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let x = i < r - a.count ? 1 : a[i - (r - a.count)]
            let y = i < r - b.count ? 1 : b[i - (r - b.count)]
            if x == y || y == 1 { out[i] = x } else if x == 1 { out[i] = y } else {
                throw TensorError(op, "shapes \(fmt(a)) and \(fmt(b)) cannot be broadcast together")
            }
        }
        return out
    }
}
