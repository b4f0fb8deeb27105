// TEMPORARY naive matmul until the matmul branch lands. Not committed.
extension Tensor {
    public func matmul(_ other: Tensor, threads: Int? = nil) throws -> Tensor {
        guard rank >= 2, other.rank >= 2, shape[rank - 1] == other.shape[other.rank - 2] else {
            throw TensorError("matmul", "shapes \(fmt(shape)) and \(fmt(other.shape)) do not fit")
        }
        let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[other.rank - 1]
        let batch = try Tensor.broadcastShapes(Array(shape.dropLast(2)), Array(other.shape.dropLast(2)), "matmul")
        let a = try expanded(to: batch + [m, k]).contiguous().scalars
        let b = try other.expanded(to: batch + [k, n]).contiguous().scalars
        let nb = Tensor.elementCount(batch)
        var out = [Float](repeating: 0, count: nb * m * n)
        for bi in 0..<nb { for i in 0..<m { for p in 0..<k {
            let av = a[bi * m * k + i * k + p]
            for j in 0..<n { out[bi * m * n + i * n + j] += av * b[bi * k * n + p * n + j] }
        } } }
        return Tensor(out, shape: batch + [m, n])
    }
}
