/// GELU and its derivative as vector kernels (`erf8`, `tanh8`, `exp8`), split among the threads for large tensors;
/// the scalar libm forms beside them are the oracles.
///
/// ```
/// exact:  y = x/2 (1 + erf(x / sqrt 2)),                     dy/dx = Phi(x) + x phi(x),  phi(x) = e^(-x^2/2) / sqrt(2 pi)
/// tanh:   u = sqrt(2/pi) (x + 0.044715 x^3),  y = x/2 (1 + tanh u),
///         dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
/// ```
extension Tensor {
    /// GELU, exact (PyTorch's `approximate="none"`) or tanh-approximated.
    public func gelu(approximation: GELUApproximation = .none) -> Tensor {
        var out = Tensor.uninitializedScalars(count)
        if count > 0 {
            Tensor.withBuffers(self, writing: &out) { px, po in
                let (x, y, n) = (px.baseAddress!, po.baseAddress!, po.count)
                switch approximation {
                case .none: simdMap(count: n, threshold: VectorLoops.costlyThreshold, x, y, Tensor.gelu8)
                case .tanh: simdMap(count: n, threshold: VectorLoops.costlyThreshold, x, y, Tensor.geluTanh8)
                }
            }
        }
        return Tensor(out, shape: shape)
    }

    /// `dx = g * gelu'(x)` for `g` and `x` of one shape.
    package static func geluBackward(_ g: Tensor, _ x: Tensor, approximation: GELUApproximation) -> Tensor {
        var out = Tensor.uninitializedScalars(x.count)
        if x.count > 0 {
            Tensor.withBuffers(g, x, writing: &out) { pg, px, po in
                let (g, x, d, n) = (pg.baseAddress!, px.baseAddress!, po.baseAddress!, po.count)
                switch approximation {
                case .none: simdZip(count: n, threshold: VectorLoops.costlyThreshold, g, x, d) { g, x in g * geluDerivative8(x) }
                case .tanh: simdZip(count: n, threshold: VectorLoops.costlyThreshold, g, x, d) { g, x in g * geluTanhDerivative8(x) }
                }
            }
        }
        return Tensor(out, shape: x.shape)
    }

    @inline(__always)
    static func gelu8(_ x: SIMD8<Float>) -> SIMD8<Float> { 0.5 * x * (1 + erf8(x * 0.70710678118654752)) }

    @inline(__always)
    static func geluTanh8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        0.5 * x * (1 + tanh8(0.79788456080286536 * fma8(x, 0.044715 * x * x, x)))
    }

    @inline(__always)
    static func geluDerivative8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let cdf = 0.5 * (1 + erf8(x * 0.70710678118654752))
        let pdf = 0.3989422804014327 * exp8(-0.5 * x * x)
        return fma8(cdf, x, pdf)
    }

    @inline(__always)
    static func geluTanhDerivative8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let k: Float = 0.79788456080286536
        let x2: SIMD8<Float> = x * x
        let t: SIMD8<Float> = tanh8(k * fma8(x, 0.044715 * x2, x))
        let du: SIMD8<Float> = k * fma8(SIMD8(repeating: 1), SIMD8(repeating: 3 * 0.044715), x2)   // du/dx
        let half: SIMD8<Float> = 0.5 * (1 + t)
        return fma8(half, 0.5 * x * (1 - t * t), du)
    }

    // MARK: Oracles

    /// GELU through libm's scalar `erff` / `tanhf`, one element at a time.
    package func geluReference(approximation: GELUApproximation = .none) -> Tensor {
        switch approximation {
        case .none: return map { 0.5 * $0 * (1 + _erff($0 * 0.70710678118654752)) }
        case .tanh: return map { 0.5 * $0 * (1 + _tanhf(0.79788456080286536 * ($0 + 0.044715 * $0 * $0 * $0))) }
        }
    }

    /// `geluBackward` through libm, one element at a time.
    package static func geluBackwardReference(_ g: Tensor, _ x: Tensor, approximation: GELUApproximation) throws -> Tensor {
        switch approximation {
        case .none:
            return try zipMap(g, x, "gelu backward") { g, x in
                let cdf = 0.5 * (1 + _erff(x * 0.70710678118654752))
                return g * (cdf + x * 0.3989422804014327 * _expf(-0.5 * x * x))
            }
        case .tanh:
            return try zipMap(g, x, "gelu backward") { g, x in
                let k: Float = 0.79788456080286536
                let t = _tanhf(k * (x + 0.044715 * x * x * x))
                return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
            }
        }
    }
}
