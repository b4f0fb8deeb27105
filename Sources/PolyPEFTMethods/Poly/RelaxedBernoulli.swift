import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PyTorch's `RelaxedBernoulli(temperature, logits).rsample()` with its exact clamps, as one primitive.
///
/// ```
/// eps = 2^-23 (float32 machine epsilon), tiny = 2^-126
/// p = clamp(sigmoid(L), eps, 1 - eps)            // clamp_probs
/// u = clamp(u, eps, 1 - eps)                     // u ~ U[0, 1), drawn by the caller
/// z = (log u - log1p(-u) + log p - log1p(-p)) / T
/// y = clamp(sigmoid(z), tiny, 1 - eps)           // SigmoidTransform's clipped sigmoid
/// dy/dL = y (1 - y) / T  where neither clamp is active, else 0   (d(logit(sigmoid L))/dL = 1)
/// ```
public enum RelaxedBernoulli {
    static let eps = Float.ulpOfOne
    static let tiny = Float.leastNormalMagnitude

    /// Samples for `logits` given the raw uniform draws `uniform` (same shape).
    public static func sample(logits: Variable, uniform: Tensor, temperature: Float) throws -> Variable {
        guard uniform.shape == logits.shape else {
            throw TensorError("relaxed_bernoulli", "noise \(fmt(uniform.shape)) does not match logits \(fmt(logits.shape))")
        }
        let l = logits.value.scalars, u = uniform.scalars
        var y = [Float](repeating: 0, count: l.count)
        var dydl = [Float](repeating: 0, count: l.count)
        for i in 0..<l.count { (y[i], dydl[i]) = sampleOne(logit: l[i], uniform: u[i], temperature: temperature) }
        let d = Tensor(dydl, shape: logits.shape)
        return Variable.record(Tensor(y, shape: logits.shape), [logits]) { g, _ in [try g * d] }
    }

    /// One element: the clamped sample `y` and `dy/dL` (0 where a clamp is active).
    @inline(__always)
    static func sampleOne(logit l: Float, uniform u: Float, temperature: Float) -> (y: Float, dydl: Float) {
        // logit(clamp(sigmoid(L))) is L itself unless the clamp is active (one log saved per element). For
        // |L| <= 15, sigmoid(L) lies in [3.0e-7, 1 - 3.0e-7], inside [eps, 1 - eps]: no exp needed to know it.
        let pInside: Bool, logitP: Float
        if Swift.abs(l) <= 15 {
            (pInside, logitP) = (true, l)
        } else {
            let p = Tensor.sigmoid(l)
            pInside = p >= eps && p <= 1 - eps
            logitP = pInside ? l : logit(Swift.min(Swift.max(p, eps), 1 - eps))
        }
        let uc = Swift.min(Swift.max(u, eps), 1 - eps)
        let z = (logit(uc) + logitP) / temperature
        let s = Tensor.sigmoid(z)
        let sInside = s >= tiny && s <= 1 - eps
        return (Swift.min(Swift.max(s, tiny), 1 - eps), pInside && sInside ? s * (1 - s) / temperature : 0)
    }

    /// `log(v) - log1p(-v)` for v in [eps, 1 - eps], as one logarithm: `log(v / (1 - v))` (1 - v is exact for
    /// v >= 1/2 and within one rounding below).
    @inline(__always)
    static func logit(_ v: Float) -> Float { _logf(v / (1 - v)) }
}
