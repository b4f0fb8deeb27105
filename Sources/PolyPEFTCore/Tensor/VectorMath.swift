/// `exp`, `erf` and `tanh` on eight lanes at once, for the elementwise kernels of a transformer (GELU, softmax).
/// libm's scalar `expf` / `erff` / `tanhf` are the oracles (VectorMathTests sweeps each against them).
///
/// ```
/// exp8:  n = round(x log2 e), r = x - n ln 2 (in two parts),  e^r by a degree-6 polynomial (Cephes' expf),
///        e^x = e^r 2^floor(n/2) 2^(n - floor(n/2))      (two scales: subnormal results and 2^128 need no branch)
///        within 2 ulp of expf; x > 88.7228 gives +inf, x < -104 gives 0, NaN stays NaN
/// erf8:  |x| >= 0.5: t = 1 / (1 + p|x|),  erf x = sign(x) (1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-x^2))
///        (Abramowitz & Stegun 7.1.26, the formula of PyTorch's vectorised `erf` on x86);
///        |x| < 0.5: the Maclaurin series to x^13 (the formula above cancels near 0);  |error| <= 3e-7
/// tanh8: tanh u = sign(u) (1 - 2 / (e^(2|u|) + 1));  |error| <= 3e-7 (absolute: near 0 the relative error grows,
///        which GELU, where tanh sits inside 1 + tanh, never sees)
/// ```
enum VectorMath {}

@inline(__always)
package func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var v = x.replacing(with: -104, where: x .< -104)
    v.replace(with: 88.72283935546875, where: v .> 88.72283935546875)
    // n = round(v log2 e) by the 1.5 * 2^23 trick: adding it leaves the rounded integer in the low mantissa bits.
    let magic = SIMD8<Float>(repeating: 12582912)
    let shifted = fma8(magic, v, SIMD8(repeating: 1.44269504088896341))
    let n = shifted - magic
    // r = v - n ln 2, with ln 2 = 0.693359375 - 2.12194440e-4 (the first part exact in few bits).
    let r = fma8(fma8(v, n, SIMD8(repeating: -0.693359375)), n, SIMD8(repeating: 2.12194440e-4))
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = fma8(SIMD8(repeating: 1.3981999507e-3), p, r)
    p = fma8(SIMD8(repeating: 8.3334519073e-3), p, r)
    p = fma8(SIMD8(repeating: 4.1665795894e-2), p, r)
    p = fma8(SIMD8(repeating: 1.6666665459e-1), p, r)
    p = fma8(SIMD8(repeating: 5.0000001201e-1), p, r)
    let er = fma8(r + 1, p, r * r)                          // 1 + r + r^2 p(r)
    let ni = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let n1 = ni &>> 1, n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD8<Float>.self)         // 2^n1, 2^n2: exponent bits
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD8<Float>.self)
    var y = er * s1 * s2
    y.replace(with: Float.infinity, where: x .> 88.72283935546875)
    y.replace(with: x, where: x .!= x)
    return y
}

@inline(__always)
package func erf8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let ax = x.replacing(with: -x, where: x .< 0)
    let t = 1 / fma8(SIMD8(repeating: 1), SIMD8(repeating: 0.3275911), ax)
    var p = SIMD8<Float>(repeating: 1.061405429)
    p = fma8(SIMD8(repeating: -1.453152027), p, t)
    p = fma8(SIMD8(repeating: 1.421413741), p, t)
    p = fma8(SIMD8(repeating: -0.284496736), p, t)
    p = fma8(SIMD8(repeating: 0.254829592), p, t)
    var y = 1 - p * t * exp8(-ax * ax)
    y.replace(with: -y, where: x .< 0)
    // Below 0.5 the series (2/sqrt(pi)) x sum_n (-1)^n x^(2n) / (n! (2n + 1)), to x^13: no cancellation near 0.
    let x2 = x * x
    var q = SIMD8<Float>(repeating: 1.0 / 9360)
    q = fma8(SIMD8(repeating: -1.0 / 1320), q, x2)
    q = fma8(SIMD8(repeating: 1.0 / 216), q, x2)
    q = fma8(SIMD8(repeating: -1.0 / 42), q, x2)
    q = fma8(SIMD8(repeating: 1.0 / 10), q, x2)
    q = fma8(SIMD8(repeating: -1.0 / 3), q, x2)
    q = fma8(SIMD8(repeating: 1), q, x2)
    let series = 1.1283791670955126 * x * q
    return y.replacing(with: series, where: ax .< 0.5)
}

@inline(__always)
package func tanh8(_ u: SIMD8<Float>) -> SIMD8<Float> {
    let au = u.replacing(with: -u, where: u .< 0)
    let y = 1 - 2 / (exp8(au + au) + 1)
    return y.replacing(with: -y, where: u .< 0)
}
