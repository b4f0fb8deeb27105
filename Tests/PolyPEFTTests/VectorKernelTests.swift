import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore

/// The vector kernels of a transformer's elementwise and row operations against their scalar oracles: `exp8`,
/// `erf8`, `tanh8` against libm over sweeps and special values; GELU, softmax, LayerNorm and RMSNorm (values and
/// every gradient) against the scalar or composed forms, on odd sizes (partial vector groups) and on sizes large
/// enough to be split among threads.
final class VectorKernelTests: XCTestCase {
    /// Every float of a sweep through `range` (`count` points) and the special values, through `f8` 8 at a time.
    func sweep(_ range: ClosedRange<Float>, count: Int, _ f8: (SIMD8<Float>) -> SIMD8<Float>) -> [(Float, Float)] {
        var xs = (0..<count).map { range.lowerBound + (range.upperBound - range.lowerBound) * Float($0) / Float(count - 1) }
        xs += [0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        while xs.count % 8 != 0 { xs.append(0.5) }
        var out: [(Float, Float)] = []
        for i in stride(from: 0, to: xs.count, by: 8) {
            let v = f8(SIMD8(xs[i..<(i + 8)]))
            for l in 0..<8 { out.append((xs[i + l], v[l])) }
        }
        return out
    }

    func testExp8IsWithinTwoUlpOfExpf() {
        var worst: Float = 0
        for (x, y) in sweep(-110...90, count: 200_003, exp8) {
            let e = expf(x)
            if e.isInfinite || e == 0 { XCTAssertEqual(y, e, "exp(\(x))"); continue }
            if e < Float.leastNormalMagnitude * 4 { XCTAssertEqual(y, e, accuracy: Float.leastNormalMagnitude, "exp(\(x))"); continue }
            worst = max(worst, abs(y - e) / e.ulp)
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error in ulp")
        let special = exp8(SIMD8(.infinity, -.infinity, .nan, 88.72283, 88.7229, -87.3, -103.9, -104.1))
        XCTAssertEqual(special[0], .infinity)
        XCTAssertEqual(special[1], 0)
        XCTAssertTrue(special[2].isNaN)
        XCTAssertEqual(special[3], expf(88.72283), accuracy: 2 * expf(88.72283).ulp)
        XCTAssertEqual(special[4], .infinity)
        XCTAssertEqual(special[5], expf(-87.3), accuracy: 2 * expf(-87.3).ulp)
        XCTAssertEqual(special[6], expf(-103.9), accuracy: Float.leastNormalMagnitude)   // subnormal
        XCTAssertEqual(special[7], 0)
    }

    func testErf8AndTanh8AreWithin3e7OfLibm() {
        for (name, f8, f, range) in [("erf", erf8, erff, Float(-8)...8), ("tanh", tanh8, tanhf, Float(-20)...20)]
            as [(String, (SIMD8<Float>) -> SIMD8<Float>, (Float) -> Float, ClosedRange<Float>)] {
            var worst: Float = 0, at: Float = 0
            for (x, y) in sweep(range, count: 100_003, f8) {
                let d = abs(y - f(x))
                if d > worst { (worst, at) = (d, x) }
            }
            XCTAssertLessThanOrEqual(worst, 3e-7, "\(name): worst |error| at \(at)")
            let special = f8(SIMD8(.infinity, -.infinity, .nan, 0, -0.0, 30, -30, 1))
            XCTAssertEqual(special[0], 1, name)
            XCTAssertEqual(special[1], -1, name)
            XCTAssertTrue(special[2].isNaN, name)
            XCTAssertEqual(special[3], 0, name)
        }
    }

    /// Sizes: one element, a partial vector group, a few groups and a tail, and one large enough for two threads.
    static let sizes = [[1], [7], [3, 13], [2, 5, 41], [300, 1537]]

    func testGELUMatchesItsScalarOracle() throws {
        for approximation in [GELUApproximation.none, .tanh] {
            for (i, shape) in Self.sizes.enumerated() {
                let x = randomTensor(shape, seed: UInt64(i), low: -6, high: 6), g = randomTensor(shape, seed: UInt64(i) + 50)
                for threads in [1, 2] {
                    try Parallel.$threadLimit.withValue(threads) {
                        assertClose(x.gelu(approximation: approximation), x.geluReference(approximation: approximation),
                                    rtol: 0, atol: 2e-6, "gelu \(approximation) \(shape) threads \(threads)")
                        assertClose(Tensor.geluBackward(g, x, approximation: approximation),
                                    try Tensor.geluBackwardReference(g, x, approximation: approximation),
                                    rtol: 0, atol: 2e-6, "gelu backward \(approximation) \(shape) threads \(threads)")
                    }
                }
            }
            // A strided input is read in order.
            let x = randomTensor([9, 11], seed: 7, low: -4, high: 4)
            assertClose(x.T.gelu(approximation: approximation), x.T.contiguous().geluReference(approximation: approximation),
                        rtol: 0, atol: 2e-6, "gelu of a transposed view")
        }
    }

    func testSoftmaxMatchesItsScalarOracle() throws {
        for (i, shape) in Self.sizes.enumerated() {
            var x = randomTensor(shape, seed: UInt64(i) + 100, low: -30, high: 30)
            if x.count > 8 {
                var v = x.scalars
                v[1] = -.infinity          // a masked entry
                x = Tensor(v, shape: shape)
            }
            for axis in Array(-x.rank..<0) {
                assertClose(try x.softmax(axis: axis), try x.softmaxReference(axis: axis), rtol: 1e-6, atol: 1e-7,
                            "softmax \(shape) axis \(axis)")
            }
        }
        // A row that is all -inf stays NaN-free as before: the oracle's rule.
        let masked = Tensor([-.infinity, -.infinity, -.infinity], shape: [1, 3])
        XCTAssertEqual(try masked.softmax().scalars.map(\.isNaN), try masked.softmaxReference().scalars.map(\.isNaN))
    }

    /// LayerNorm (with and without weight and bias) and RMSNorm: outputs and the gradients of input, weight and bias
    /// against the composed oracles, on odd widths and on a shape split among two threads.
    func testNormKernelsMatchTheComposedOracles() throws {
        for shape in [[1, 1], [3, 5], [2, 4, 13], [7, 384], [600, 130]] {
            let d = shape.last!
            let x = randomTensor(shape, seed: 1, low: -3, high: 3), w = randomTensor([d], seed: 2), b = randomTensor([d], seed: 3)
            let cot = randomTensor(shape, seed: 4)
            for threads in [1, 2] {
                try Parallel.$threadLimit.withValue(threads) {
                    for (hasW, hasB) in [(true, true), (false, false), (true, false)] {
                        let (fast, slow) = try gradients([x, w, b]) { v, reference in
                            let (wv, bv) = (hasW ? v[1] : nil, hasB ? v[2] : nil)
                            return reference ? try v[0].layerNormReference(weight: wv, bias: bv, eps: 1e-5)
                                             : try v[0].layerNorm(weight: wv, bias: bv, eps: 1e-5)
                        } cotangent: { cot }
                        for k in 0..<4 where fast[k] != nil || slow[k] != nil {
                            assertClose(fast[k]!, slow[k]!, rtol: 1e-4, atol: 2e-5, "layer norm \(shape) w \(hasW) b \(hasB) #\(k) threads \(threads)")
                        }
                    }
                    let (fast, slow) = try gradients([x, w]) { v, reference in
                        reference ? try v[0].rmsNormReference(weight: v[1], eps: 1e-6) : try v[0].rmsNorm(weight: v[1], eps: 1e-6)
                    } cotangent: { cot }
                    for k in 0..<3 { assertClose(fast[k]!, slow[k]!, rtol: 1e-4, atol: 2e-5, "rms norm \(shape) #\(k) threads \(threads)") }
                }
            }
        }
    }

    /// `[output, gradient of each input]` of `f` with the fast (`false`) and the reference (`true`) form, the
    /// gradients of `sum(f(inputs) * cotangent)`.
    func gradients(_ inputs: [Tensor], _ f: ([Variable], Bool) throws -> Variable,
                   cotangent: () -> Tensor) throws -> ([Tensor?], [Tensor?]) {
        func run(_ reference: Bool) throws -> [Tensor?] {
            let vars = inputs.map { Variable($0, requiresGrad: true) }
            let y = try f(vars, reference)
            try (try y * Variable(cotangent())).sum().backward()
            return [y.value] + vars.map { $0.grad }
        }
        return (try run(false), try run(true))
    }
}
