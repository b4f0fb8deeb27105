/// Matrix products: batched matmul and the fused linear layer.
extension Variable {
    /// `a @ b` with NumPy batch broadcasting:
    ///
    /// ```
    /// y = a b          // a: [..., M, K], b: [..., K, N], y: [..., M, N]
    /// da = g b^T       // summed over broadcast batch dims
    /// db = a^T g
    /// ```
    public func matmul(_ other: Variable) throws -> Variable {
        let (a, b) = (value, other.value)
        return Variable.record(try a.matmul(b), [self, other]) { g, needs in
            [needs[0] ? try g.matmul(try b.transposed()).reduced(toShape: a.shape) : nil,
             needs[1] ? try a.transposed().matmul(g).reduced(toShape: b.shape) : nil]
        }
    }

    /// PyTorch's `nn.Linear`: `y = x W^T + bias` over the last axis of `x`.
    ///
    /// ```
    /// x: [..., in], weight: [out, in], bias: [out], y: [..., out]
    /// dx = g W               // [..., in]
    /// dW = g^T x             // [out, in], leading axes flattened
    /// db = sum(g, leading)   // [out]
    /// ```
    /// A frozen weight gets no `dW` matmul at all.
    public func linear(weight: Variable, bias: Variable?) throws -> Variable {
        let w = weight.value
        guard w.rank == 2, value.rank >= 1, value.shape[value.rank - 1] == w.shape[1] else {
            throw TensorError("linear", "input \(fmt(shape)) does not fit weight \(fmt(w.shape)) ([out, in])")
        }
        if let bias, bias.shape != [w.shape[0]] {
            throw TensorError("linear", "bias \(fmt(bias.shape)) does not fit weight \(fmt(w.shape))")
        }
        let xs = shape, inF = w.shape[1], outF = w.shape[0]
        let x2 = try value.reshaped([-1, inF])                          // x2: [M, in]
        var y = try x2.matmul(w.T)                                      // y: [M, out]
        if let bias {                                                   // y += bias, in place (y is new)
            let rows = y.shape[0]
            bias.value.withContiguousBuffer { b in
                y.withUnsafeMutableElements { dst in
                    guard let bp = b.baseAddress, let p = dst.baseAddress else { return }
                    Gemm.addRowVector(bp, rows: rows, into: p, width: outF)
                }
            }
        }
        let out = try y.reshaped(Array(xs.dropLast()) + [outF])
        let inputs = [self, weight] + (bias.map { [$0] } ?? [])
        return Variable.record(out, inputs) { g, needs in
            let g2 = try g.reshaped([-1, outF])                         // g2: [M, out]
            let dx = needs[0] ? try g2.matmul(w).reshaped(xs) : nil     // [M, in] -> x's shape
            let dw = needs[1] ? try g2.T.matmul(x2) : nil               // [out, in]
            let db = needs.count > 2 && needs[2] ? try g2.sum(axes: [0]) : nil
            return [dx, dw, db]
        }
    }
}
