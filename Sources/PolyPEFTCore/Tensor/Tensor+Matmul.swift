/// Matrix products of tensors, with NumPy's `matmul` semantics.
///
/// ```
/// [M, K] · [K, N]                  -> [M, N]
/// [..., M, K] · [..., K, N]        -> [broadcast(...), M, N]   (a rank-2 operand broadcasts over the batch)
/// [K] · [..., K, N] -> [..., N]    [..., M, K] · [K] -> [..., M]    [K] · [K] -> []
/// ```
///
/// Operands are read through their strides: transposed, sliced and broadcast views are never copied first.
extension Tensor {
    /// The matrix product `self · other` (see the type-level comment for the shapes), computed by `Gemm.multiply`.
    ///
    /// - Parameter threads: the most threads to use; nil means `Parallel.currentThreads` (a scoped
    ///   `Parallel.threadLimit`, else the processor count or `POLYPEFT_THREADS`). Small products always run on one thread.
    /// - Throws: `TensorError("matmul", ...)` naming both shapes when they do not fit, or when `threads < 1`.
    public func matmul(_ other: Tensor, threads: Int? = nil) throws -> Tensor {
        let workers = threads ?? Parallel.currentThreads
        guard workers >= 1 else { throw TensorError("matmul", "threads must be at least 1, got \(workers)") }
        let level = SIMDLevel.current      // read here: batched products run on worker threads, outside this scope
        return try Tensor.matmulPlan(self, other).run(workers: workers) { m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, w in
            Gemm.multiply(m: m, n: n, k: k, a: a, rowStrideA: rsA, colStrideA: csA, b: b, rowStrideB: rsB, colStrideB: csB,
                          c: c, ldc: ldc, accumulate: false, threads: w, tail: nil, level: level)
        }
    }

    /// The same product by `Gemm.reference` (the naive triple loop): the oracle for tests and `polyctl bench`.
    public func matmulReference(_ other: Tensor) throws -> Tensor {
        try Tensor.matmulPlan(self, other).run(workers: 1) { m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, _ in
            Gemm.reference(m: m, n: n, k: k, a: a, rowStrideA: rsA, colStrideA: csA, b: b, rowStrideB: rsB, colStrideB: csB,
                           c: c, ldc: ldc, accumulate: false)
        }
    }

    /// Checks the shapes and lays out the batched product: both operands as rank-(2+b) views over a common batch.
    static func matmulPlan(_ x: Tensor, _ y: Tensor) throws -> MatmulPlan {
        guard x.rank >= 1 && y.rank >= 1 else {
            throw TensorError("matmul", "operands must have rank >= 1, got shapes \(fmt(x.shape)) and \(fmt(y.shape))")
        }
        // NumPy: a vector on the left is a one-row matrix, on the right a one-column matrix; the added axis is dropped.
        let a = x.rank == 1 ? Tensor(storage: x.storage, shape: [1] + x.shape, strides: [0] + x.strides, offset: x.offset) : x
        let b = y.rank == 1 ? Tensor(storage: y.storage, shape: y.shape + [1], strides: y.strides + [0], offset: y.offset) : y
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], k2 = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        guard k == k2 else {
            throw TensorError("matmul", "shapes \(fmt(x.shape)) and \(fmt(y.shape)) do not fit: "
                + "\(k) columns on the left, \(k2) rows on the right")
        }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch: [Int]
        do { batch = try broadcastShapes(batchA, batchB, "matmul") } catch {
            throw TensorError("matmul", "batch dimensions \(fmt(batchA)) and \(fmt(batchB)) of shapes \(fmt(x.shape)) "
                + "and \(fmt(y.shape)) cannot be broadcast together")
        }
        guard let total = checkedElementCount(batch + [m, n]) else {
            throw TensorError("matmul", "result of \(fmt(x.shape)) and \(fmt(y.shape)) has too many elements")
        }
        var outShape = batch
        if x.rank > 1 { outShape.append(m) }
        if y.rank > 1 { outShape.append(n) }
        return MatmulPlan(a: try a.expanded(to: batch + [m, k]), b: try b.expanded(to: batch + [k, n]),
                          m: m, n: n, k: k, batch: batch, count: total, outShape: outShape)
    }
}

/// A checked batched product: `a: [batch..., m, k]`, `b: [batch..., k, n]` (broadcast views), result `outShape`.
struct MatmulPlan {
    let a: Tensor, b: Tensor
    let m: Int, n: Int, k: Int
    let batch: [Int]
    let count: Int
    let outShape: [Int]

    typealias Kernel = (_ m: Int, _ n: Int, _ k: Int, _ a: UnsafePointer<Float>, _ rsA: Int, _ csA: Int,
                        _ b: UnsafePointer<Float>, _ rsB: Int, _ csB: Int,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ workers: Int) -> Void

    /// Runs `kernel` once per batch element into a new contiguous result, the batch shared among the workers or each
    /// product given all of them as `batchSplit` (GemmSelection.swift) decides.
    func run(workers: Int, _ kernel: Kernel) -> Tensor {
        if count == 0 { return Tensor([], shape: outShape) }
        let r = batch.count
        let batchCount = Tensor.elementCount(batch)
        let (rsA, csA, rsB, csB) = (a.strides[r], a.strides[r + 1], b.strides[r], b.strides[r + 1])
        // Storage offsets of every batch element of a and b (an odometer over the broadcast batch dims).
        var offA = [Int](repeating: a.offset, count: batchCount), offB = [Int](repeating: b.offset, count: batchCount)
        var index = [Int](repeating: 0, count: r)
        var oa = a.offset, ob = b.offset
        for e in 0..<batchCount {
            offA[e] = oa; offB[e] = ob
            var d = r - 1
            while d >= 0 {
                index[d] += 1; oa += a.strides[d]; ob += b.strides[d]
                if index[d] < batch[d] { break }
                oa -= a.strides[d] * batch[d]; ob -= b.strides[d] * batch[d]; index[d] = 0
                d -= 1
            }
        }
        let (outer, inner) = MatmulPlan.batchSplit(count: batchCount, m: m, n: n, k: k, workers: workers)
        let (m, n, k) = (m, n, k)
        var out = Tensor.uninitializedScalars(count)                    // the kernels write every element
        Tensor.withStorages(a, b, writing: &out) { pa, pb, pc in
            // Empty operands have no base address; the kernels then touch neither (k == 0 zeroes C).
            let dummy = UnsafeMutablePointer<Float>.allocate(capacity: 1)
            defer { dummy.deallocate() }
            let baseA = pa.baseAddress ?? UnsafePointer(dummy), baseB = pb.baseAddress ?? UnsafePointer(dummy)
            let c = pc.baseAddress!
            Parallel.run(workers: outer) { w in
                for e in Parallel.part(w, of: outer, count: batchCount) {
                    kernel(m, n, k, baseA + offA[e], rsA, csA, baseB + offB[e], rsB, csB, c + e * m * n, n, inner)
                }
            }
        }
        return Tensor(out, shape: outShape)
    }
}
