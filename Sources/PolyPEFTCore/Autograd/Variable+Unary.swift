/// Elementwise maps. Each backward multiplies the incoming gradient by the local derivative.
extension Variable {
    /// Records a map whose derivative is `dydx(x, y)`: backward `dx[i] = g[i] * dydx(x[i], y[i])` in one loop.
    /// Inlined, so each caller's derivative is inlined into its loop instead of called per element.
    @inline(__always)
    func unary(_ y: Tensor, _ dydx: @escaping (_ x: Float, _ y: Float) -> Float) -> Variable {
        let x = value
        return Variable.record(y, [self]) { g, _ in
            guard g.shape == y.shape else {
                throw TensorError("unary backward", "gradient \(fmt(g.shape)) does not match the output \(fmt(y.shape))")
            }
            var d = Tensor.uninitializedScalars(y.count)                        // g, x, y, d: same shape
            Tensor.withBuffers(g, x, y, writing: &d) { pg, px, py, pd in
                for i in 0..<pd.count { pd[i] = pg[i] * dydx(px[i], py[i]) }
            }
            return [Tensor(d, shape: y.shape)]
        }
    }

    public func exp() -> Variable { unary(value.exp()) { _, y in y } }
    public func log() -> Variable { unary(value.log()) { x, _ in 1 / x } }
    public func sqrt() -> Variable { unary(value.sqrt()) { _, y in 0.5 / y } }
    public func squared() -> Variable { unary(value.squared()) { x, _ in 2 * x } }
    public func pow(_ p: Float) -> Variable { unary(value.pow(p)) { x, _ in p * _powf(x, p - 1) } }
    public func tanh() -> Variable { unary(value.tanh()) { _, y in 1 - y * y } }
    public func sigmoid() -> Variable { unary(value.sigmoid()) { _, y in y * (1 - y) } }
    /// ReLU; its backward `dx = g * [x > 0]` is a select loop of its own (the hottest map of small models: through
    /// `unary` the derivative stayed a closure call per element).
    public func relu() -> Variable {
        let x = value, y = value.relu()
        return Variable.record(y, [self]) { g, _ in
            guard g.shape == y.shape else {
                throw TensorError("relu backward", "gradient \(fmt(g.shape)) does not match the output \(fmt(y.shape))")
            }
            var d = Tensor.uninitializedScalars(y.count)                        // g, x, d: same shape
            Tensor.withBuffers(g, x, writing: &d) { pg, px, pd in
                for i in 0..<pd.count { pd[i] = px[i] > 0 ? pg[i] : 0 }
            }
            return [Tensor(d, shape: y.shape)]
        }
    }
    public func abs() -> Variable { unary(value.abs()) { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) } }

    /// Clamp; the gradient is 1 strictly inside `[low, high]` and 0 outside (as PyTorch, 1 at the bounds).
    public func clamped(min low: Float = -.infinity, max high: Float = .infinity) -> Variable {
        unary(value.clamped(min: low, max: high)) { x, _ in x >= low && x <= high ? 1 : 0 }
    }

    /// GELU, exact or tanh-approximated, with the matching derivative (both vector kernels: Tensor+GELU.swift).
    public func gelu(approximation: GELUApproximation = .none) -> Variable {
        let x = value, y = value.gelu(approximation: approximation)
        return Variable.record(y, [self]) { g, _ in
            guard g.shape == y.shape else {
                throw TensorError("gelu backward", "gradient \(fmt(g.shape)) does not match the output \(fmt(y.shape))")
            }
            return [Tensor.geluBackward(g, x, approximation: approximation)]
        }
    }
}
