/// Adding values at a few positions of a tensor (sparse fine-tuning's weight update).
extension Tensor {
    /// `self` with `values[i]` added at flat (row-major) position `indices[i]`:
    ///
    /// ```
    /// y = x;  y.flat[indices[i]] += values[i]         x: any shape, values: [k], indices: k distinct positions
    /// ```
    /// Indices must be in range (a `TensorError` otherwise); repeated indices add twice.
    public func addingSparse(_ values: Tensor, at indices: [Int]) throws -> Tensor {
        guard values.count == indices.count else {
            throw TensorError("addingSparse", "\(values.count) values for \(indices.count) indices")
        }
        var out = Tensor(scalars, shape: shape)
        let v = values.contiguous().scalars
        let n = count
        for (i, at) in indices.enumerated() {
            guard at >= 0 && at < n else { throw TensorError("addingSparse", "index \(at) is outside a tensor of \(n) elements") }
            out.storage[at] += v[i]
        }
        return out
    }

    /// The elements at flat (row-major) positions `indices`, as a [k] tensor (the naive gather, also the backward of
    /// `addingSparse` for its values).
    public func flatGather(_ indices: [Int]) throws -> Tensor {
        let flat = contiguous().scalars, n = flat.count
        var out = [Float](repeating: 0, count: indices.count)
        for (i, at) in indices.enumerated() {
            guard at >= 0 && at < n else { throw TensorError("flatGather", "index \(at) is outside a tensor of \(n) elements") }
            out[i] = flat[at]
        }
        return Tensor(out, shape: [indices.count])
    }
}

extension Variable {
    /// `x` with `values[i]` added at flat position `indices[i]` (see `Tensor.addingSparse`):
    ///
    /// ```
    /// dx = g                      dvalues[i] = g.flat[indices[i]]
    /// ```
    public func addingSparse(_ values: Variable, at indices: [Int]) throws -> Variable {
        let y = try value.addingSparse(values.value, at: indices)
        return Variable.record(y, [self, values]) { g, needs in
            [needs[0] ? g : nil, needs[1] ? try g.flatGather(indices) : nil]
        }
    }
}
