import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The plain-loop skill mixer against the recorded-op mixing it replaces in evaluation (`PolyLinear.factors`).
final class SkillMixingTests: XCTestCase {
    func testMatchesRecordedFactorsOnOddShapes() throws {
        // (in, out, r, skills, splits, groups): widths off and on the 8-lane vectors, one and several splits.
        let cases = [(6, 4, 2, 3, 2, 4), (5, 7, 1, 1, 1, 1), (33, 18, 3, 5, 3, 2), (16, 24, 8, 2, 2, 3), (9, 9, 9, 4, 1, 5)]
        for (inF, outF, r, k, s, g) in cases {
            var rng = Xoshiro256(seed: 3)
            let layer = try PolyLinear(wrapping: Linear(inF, outF, using: &rng), path: "fc", r: r, nTasks: 2, nSkills: k,
                                       nSplits: s, initWeights: false, using: &rng)
            let w = randomTensor([g, s, k], seed: 4, low: 0, high: 1)                       // [G, S, K]
            let (left, right) = try layer.factors(Variable(w), Context.inference())         // [G, in, r], [G, r, out]
            for scale in [Float(1), 0.5] {
                let mixed = SkillMixing.mix(w: w, a: layer.loraA.value, b: layer.loraB.value, scale: scale)
                let label = "in \(inF) out \(outF) r \(r) K \(k) S \(s) G \(g) scale \(scale)"
                XCTAssertEqual(mixed.left.shape, [g, inF, r], label)
                XCTAssertEqual(mixed.right.shape, [g, r, outF], label)
                assertClose(mixed.left, left.value, rtol: 1e-5, atol: 1e-6, label)
                assertClose(mixed.right, right.value * scale, rtol: 1e-5, atol: 1e-6, label)
            }
        }
    }

    /// Evaluation without gradients (mixed per task with plain loops) agrees with evaluation that records gradients
    /// (recorded mixing) and with per-row routing, for interleaved and grouped tasks.
    func testInferencePathAgreesWithRecordedPaths() throws {
        var rng = Xoshiro256(seed: 9)
        let layer = try PolyLinear(wrapping: Linear(20, 12, using: &rng), path: "fc", r: 3, nTasks: 5, nSkills: 4,
                                   nSplits: 2, initWeights: false, using: &rng)
        layer.router.moduleLogits.value = Tensor.normal([5, 8], std: 2, using: &rng)
        let x = randomTensor([7, 3, 20], seed: 10)
        for tasks in [[0, 1, 2, 3, 4, 0, 1], [2, 2, 2, 2, 2, 2, 2], [4, 4, 1, 1, 1, 0, 0]] {
            layer.strategy = .automatic
            let fast = try layer(Variable(x), Context.inference(taskIDs: tasks)).value
            let recorded = try layer(Variable(x), Context(mode: .eval, taskIDs: tasks)).value
            layer.strategy = .perRow
            let perRow = try layer(Variable(x), Context.inference(taskIDs: tasks)).value
            assertClose(fast, recorded, rtol: 1e-5, atol: 1e-6, "\(tasks)")
            assertClose(fast, perRow, rtol: 1e-5, atol: 1e-6, "\(tasks)")
        }
    }

    /// Large mixings are shared among threads by (group, split); each output is computed the same way, so the
    /// result is bitwise the one-thread result.
    func testThreadedMixingEqualsOneThread() {
        let (g, s, k, d, r, e) = (7, 2, 8, 512, 8, 512)
        XCTAssertGreaterThanOrEqual(g * s * k * r * (d + e), Gemm.parallelThreshold)
        let w = randomTensor([g, s, k], seed: 1), a = randomTensor([s, k, d, r], seed: 2), b = randomTensor([s, k, r, e], seed: 3)
        let one = Parallel.$threadLimit.withValue(1) { SkillMixing.mix(w: w, a: a, b: b, scale: 0.125) }
        let two = Parallel.$threadLimit.withValue(2) { SkillMixing.mix(w: w, a: a, b: b, scale: 0.125) }
        XCTAssertEqual(one.left, two.left)
        XCTAssertEqual(one.right, two.right)
    }
}
