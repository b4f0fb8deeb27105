import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// PolyLinear's own forward (the merged shortcut) and the automatic kernel choice.
final class PolyLinearForwardTests: XCTestCase {
    func testMergedTaskCostsOnlyTheBaseLayer() throws {
        var g = Xoshiro256(seed: 3)
        let layer = try PolyLinear(wrapping: Linear(6, 4, using: &g), path: "fc", r: 2, nTasks: 3, nSkills: 3, nSplits: 1,
                                   initWeights: false, using: &g)
        let x = Variable(randomTensor([5, 6], seed: 4))
        let onTheFly = try layer(x, .inference(taskIDs: [2, 2, 2, 2, 2])).value
        try layer.merge(task: 2)
        let merged = try layer(x, .inference(taskIDs: [2, 2, 2, 2, 2])).value
        // The shortcut returns the (merged) base layer's output itself.
        XCTAssertEqual(merged, try layer.baseLayer(x, .inference()).value)
        assertClose(merged, onTheFly, rtol: 1e-5, atol: 1e-6)
        // With a recorder the general path runs and records the layer's intermediates.
        let rec = Recorder()
        let ctx = Context.inference(taskIDs: [2, 2, 2, 2, 2])
        ctx.recorder = rec
        XCTAssertEqual(try layer(x, ctx).value, merged)
        XCTAssertNotNil(rec["layer.fc.output"])
        // Another task still fails loudly.
        XCTAssertThrowsError(try layer(x, .inference(taskIDs: [2, 2, 0, 2, 2])))
        try layer.unmerge()
    }

    /// The rule reproduces the measured winners (BENCHMARKS.md, "Routing kernel choice").
    func testAutomaticStrategyFollowsMeasurements() {
        func perRow(_ rows: Int, _ groups: Int, _ width: Int, _ r: Int, _ k: Int, _ mixing: MixingMode) -> Bool {
            PolyLinear.prefersPerRowRouting(rows: rows, groups: groups, inFeatures: width, outFeatures: width, r: r,
                                            skills: k, mixing: mixing)
        }
        XCTAssertTrue(perRow(2048, 2048, 1024, 8, 8, .parameters))     // training, 2048 one-token samples
        XCTAssertFalse(perRow(2048, 256, 1024, 8, 8, .parameters))     // training, 256 samples x 8 tokens (even)
        XCTAssertFalse(perRow(2048, 128, 1024, 8, 8, .parameters))     // training, 128 samples x 16 tokens
        XCTAssertFalse(perRow(2048, 16, 1024, 8, 8, .parameters))      // inference, 16 tasks
        XCTAssertTrue(perRow(256, 256, 48, 2, 6, .parameters))         // polyctl train's MLP (32 -> 64), training
        XCTAssertTrue(perRow(256, 18, 48, 2, 6, .parameters))          // ... inference, 18 interleaved tasks
        XCTAssertTrue(perRow(256, 18, 48, 2, 6, .outputs))             // ... output mixing
        XCTAssertFalse(perRow(256, 1, 48, 2, 6, .outputs))             // one group: always per group
    }

    /// Without a recorder the update rides on the base layer's matmuls (`LowRankUpdate.applied`); with one, the base
    /// output is computed on its own and the update added. Both give the same output and the same gradients for the
    /// input, the skills and the router, in training (same noise) and evaluation with gradients, for both mixings,
    /// with and without MHR splits, on the per-group kernel (on this small layer `automatic` would route per row).
    func testFusedForwardMatchesBasePlusDelta() throws {
        for mixing in [MixingMode.parameters, .outputs] { for splits in [1, 2] { for training in [false, true] {
            var g = Xoshiro256(seed: 5)
            let layer = try PolyLinear(wrapping: Linear(24, 20, using: &g), path: "fc", r: 8, nTasks: 3, nSkills: 4,
                                       nSplits: splits, initWeights: false, mixing: mixing, using: &g)
            layer.strategy = .perGroup
            let x = randomTensor([4, 9, 24], seed: 6), seed = randomTensor([4, 9, 20], seed: 7)
            func run(recording: Bool) throws -> [Tensor] {
                for (_, p) in layer.namedParameters() { p.zeroGrad() }
                let ctx = Context(mode: training ? .train : .eval, taskIDs: [2, 0, 2, 1], rng: Xoshiro256(seed: 9))
                if recording { ctx.recorder = Recorder() }
                let xv = Variable(x, requiresGrad: true)
                let y = try layer(xv, ctx)
                try y.backward(seed: seed)
                return [y.value, xv.grad!, layer.loraA.grad!, layer.loraB.grad!, layer.router.moduleLogits.grad!]
            }
            let fused = try run(recording: false), apart = try run(recording: true)
            for (i, (a, b)) in zip(fused, apart).enumerated() {
                assertClose(a, b, rtol: 1e-5, atol: 1e-6, "\(mixing) splits \(splits) training \(training): tensor \(i)")
            }
        } } }
    }
}
