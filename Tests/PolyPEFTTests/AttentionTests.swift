import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class AttentionTests: XCTestCase {
    let q = randomTensor([2, 3, 4, 5], seed: 1)
    let k = randomTensor([2, 3, 6, 5], seed: 2)
    let v = randomTensor([2, 3, 6, 7], seed: 3)
    let bias = randomTensor([1, 3, 4, 6], seed: 4)

    /// Padding mask [2, 1, 1, 6]: sample 1 hides its last two keys.
    var mask: Tensor {
        var m = [Float](repeating: 0, count: 12)
        m[10] = TokenBatch.maskedScore; m[11] = TokenBatch.maskedScore
        return Tensor(m, shape: [2, 1, 1, 6])
    }

    func testMatchesUnfusedReference() throws {
        let vars = [q, k, v, bias].map { Variable($0) }
        for scale: Float in [1, 0.37] {
            let fused = try Variable.attention(query: vars[0], key: vars[1], value: vars[2], bias: vars[3], mask: mask, scale: scale)
            let ref = try Variable.attentionReference(query: vars[0], key: vars[1], value: vars[2], bias: vars[3], mask: mask, scale: scale)
            assertClose(fused.value, ref.value, rtol: 1e-5, atol: 1e-6)
        }
    }

    func testGradientsWithBiasAndMask() throws {
        let m = mask
        try gradCheck([q, k, v, bias]) { x in
            try Variable.attention(query: x[0], key: x[1], value: x[2], bias: x[3], mask: m, scale: 0.8)
        }
    }

    func testGradientsWithPerHeadBroadcastBiasAndDropout() throws {
        let b2 = randomTensor([3, 1, 6], seed: 5)                    // broadcast over batch and queries
        var g = Xoshiro256(seed: 9)
        let drop = Tensor.uniform([2, 3, 4, 6], using: &g).map { $0 >= 0.3 ? 1 / 0.7 : 0 }
        try gradCheck([q, k, v, b2]) { x in
            try Variable.attention(query: x[0], key: x[1], value: x[2], bias: x[3], scale: 1, probabilityDropout: drop)
        }
    }

    func testMaskedKeysGetNoWeightAndInfinityGivesNoNaN() throws {
        // A -inf mask on sample 1's last keys: output must not depend on those values.
        var m = [Float](repeating: 0, count: 12)
        m[10] = -.infinity; m[11] = -.infinity
        let inf = Tensor(m, shape: [2, 1, 1, 6])
        let out = try Variable.attention(query: Variable(q), key: Variable(k), value: Variable(v), mask: inf).value
        var v2 = v.contiguous()
        for h in 0..<3 { for j in 4..<6 { for d in 0..<7 { v2.storage[((1 * 3 + h) * 6 + j) * 7 + d] = 1000 } } }
        let out2 = try Variable.attention(query: Variable(q), key: Variable(k), value: Variable(v2), mask: inf).value
        assertClose(out2, out)
        XCTAssertFalse(out.scalars.contains { $0.isNaN })
        // A fully masked row gives zeros and zero gradients, no NaN.
        let all = Tensor(repeating: -.infinity, shape: [1, 1, 1, 6])
        let qv = Variable(q, requiresGrad: true)
        let y = try Variable.attention(query: qv, key: Variable(k), value: Variable(v), mask: all)
        XCTAssertEqual(y.value.scalars.max(), 0)
        try y.sum().backward()
        XCTAssertFalse(qv.grad!.scalars.contains { $0.isNaN })
    }

    /// Without a bias the scores are computed a (sample, head) block at a time (`BlockedAttention`): values and
    /// every gradient equal the materialised path's (forced by a zero bias, which changes no score), on strided views
    /// as a model makes them (a permuted [B, T, H, D]), odd sizes, the padding mask and dropout, at 1 and 2 threads
    /// and every SIMD level; and the finite-difference check.
    func testBlockedAttentionMatchesTheMaterialisedPath() throws {
        for (b, h, tq, tk, d) in [(1, 1, 1, 1, 1), (2, 3, 5, 7, 3), (3, 2, 19, 19, 16), (2, 12, 33, 33, 32)] {
            func heads(_ t: Int, _ dd: Int, _ seed: UInt64) -> Tensor {       // [B, H, T, D] as a view of [B, T, H, D]
                try! randomTensor([b, t, h, dd], seed: seed).permuted([0, 2, 1, 3])
            }
            let (q, k, v) = (heads(tq, d, 1), heads(tk, d, 2), heads(tk, d + 1, 3))
            var m = [Float](repeating: 0, count: b * tk)
            if tk > 2 { m[b * tk - 1] = TokenBatch.maskedScore; m[b * tk - 2] = -.infinity }
            let mask = Tensor(m, shape: [b, 1, 1, tk])
            var g = Xoshiro256(seed: 9)
            let drop = Tensor.uniform([b, h, tq, tk], using: &g).map { $0 >= 0.2 ? 1 / 0.8 : 0 }
            let zeroBias = Tensor.zeros([1, h, 1, tk])
            let cot = randomTensor([b, h, tq, d + 1], seed: 4)
            for dropout in [nil, drop] { for threads in [1, 2] {
                try forEachSIMDLevel { level in
                    try Parallel.$threadLimit.withValue(threads) {
                        func run(_ bias: Tensor?) throws -> [Tensor] {
                            let x = [q, k, v].map { Variable($0, requiresGrad: true) }
                            let y = try Variable.attention(query: x[0], key: x[1], value: x[2], bias: bias.map { Variable($0) },
                                                           mask: mask, scale: 0.3, probabilityDropout: dropout)
                            try (try y * Variable(cot)).sum().backward()
                            return [y.value] + x.map { $0.grad! }
                        }
                        let (blocked, materialised) = (try run(nil), try run(zeroBias))
                        for (i, name) in ["out", "dq", "dk", "dv"].enumerated() {
                            assertClose(blocked[i], materialised[i], rtol: 1e-5, atol: 1e-6,
                                        "\(name) [\(b),\(h),\(tq),\(tk),\(d)] dropout \(dropout != nil) threads \(threads) \(level)")
                        }
                    }
                }
            } }
        }
        let m = mask
        var g = Xoshiro256(seed: 10)
        let drop = Tensor.uniform([2, 3, 4, 6], using: &g).map { $0 >= 0.3 ? 1 / 0.7 : 0 }
        try gradCheck([q, k, v]) { x in
            try Variable.attention(query: x[0], key: x[1], value: x[2], mask: m, scale: 0.8, probabilityDropout: drop)
        }
        let ref = try Variable.attentionReference(query: Variable(q), key: Variable(k), value: Variable(v), mask: m, scale: 0.8)
        assertClose(try Variable.attention(query: Variable(q), key: Variable(k), value: Variable(v), mask: m, scale: 0.8).value,
                    ref.value, rtol: 1e-5, atol: 1e-6)
    }

    func testShapeErrors() {
        XCTAssertThrowsError(try Variable.attention(query: Variable(q), key: Variable(v), value: Variable(v)))
        XCTAssertThrowsError(try Variable.attention(query: Variable(q), key: Variable(k), value: Variable(v),
                                                    bias: Variable(randomTensor([3, 5, 6], seed: 1)))) { e in
            XCTAssertTrue("\(e)".contains("bias"), "\(e)")
        }
        XCTAssertThrowsError(try Variable.attention(query: Variable(q), key: Variable(k), value: Variable(v),
                                                    mask: Tensor.zeros([3, 1, 1, 6])))
    }
}
