import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class PolyLinearTests: XCTestCase {
    func makeLayer(in inF: Int = 6, out outF: Int = 4, r: Int = 2, tasks: Int = 3, skills: Int = 3, splits: Int = 2,
                   mixing: MixingMode = .parameters, seed: UInt64 = 1) throws -> PolyLinear {
        var g = Xoshiro256(seed: seed)
        let base = Linear(inF, outF, using: &g)
        let layer = try PolyLinear(wrapping: base, path: "fc", r: r, nTasks: tasks, nSkills: skills, nSplits: splits,
                                   initWeights: false, mixing: mixing, using: &g)
        layer.router.moduleLogits.value = Tensor.normal([tasks, splits * skills], std: 2, using: &g)
        return layer
    }

    /// Per-sample reference with plain loops: each row routed by its sample's task.
    func reference(_ layer: PolyLinear, x: Tensor, tasks: [Int]) throws -> Tensor {
        let w = try layer.routingWeights(), t = x.rank == 3 ? x.shape[1] : 1        // [n_tasks, S, K]
        return try routedLayerReference(layer, x: x) { row in try w.selecting(axis: 0, index: tasks[row / t]) }
    }

    func testForwardMatchesReferenceBothModesAndRanks() throws {
        for mixing in MixingMode.allCases { for strategy in RoutingStrategy.allCases {
            for splits in [1, 2] {
                let layer = try makeLayer(splits: splits, mixing: mixing)
                layer.strategy = strategy
                for shape in [[5, 6], [4, 3, 6]] {
                    let x = randomTensor(shape, seed: 3)
                    let tasks = [2, 0, 2, 1, 0].prefix(shape[0]).map { $0 }
                    let y = try layer(Variable(x), Context.inference(taskIDs: tasks)).value
                    assertClose(y, try reference(layer, x: x, tasks: tasks), rtol: 1e-5, atol: 1e-6, "\(mixing) \(strategy) S=\(splits) \(shape)")
                }
            }
        } }
    }

    func testGradientsByFiniteDifferences() throws {
        for mixing in MixingMode.allCases { for strategy in [RoutingStrategy.perGroup, .perRow] {
            for mode in [Context.Mode.eval, .train] {
                let layer = try makeLayer(mixing: mixing)
                layer.strategy = strategy
                let x = randomTensor([4, 2, 6], seed: 5)
                let tasks = [1, 0, 1, 2]
                let noise = randomTensor([4, 2, 3], seed: 6, low: 0.05, high: 0.95)
                func run(_ input: Variable) throws -> Variable {
                    let ctx = Context(mode: mode, taskIDs: tasks)
                    ctx.injectedUniformDraws["fc"] = noise
                    return try layer(input, ctx)
                }
                try paramGradCheck([layer.loraA, layer.loraB, layer.router.moduleLogits]) { try run(Variable(x)) }
                try gradCheck([x]) { v in try run(v[0]) }
            }
        } }
    }

    func testTaskIDValidationAndShapeErrors() throws {
        let layer = try makeLayer()
        let x = Variable(randomTensor([2, 6], seed: 1))
        XCTAssertThrowsError(try layer(x, Context.inference(taskIDs: [0, 3]))) {
            XCTAssertEqual("\($0)", "fc: task id 3 of sample 1 is out of range 0..<3")
        }
        XCTAssertThrowsError(try layer(x, Context.inference(taskIDs: [-1, 0]))) {
            XCTAssertEqual("\($0)", "fc: task id -1 of sample 0 is out of range 0..<3")
        }
        XCTAssertThrowsError(try layer(x, Context.inference(taskIDs: [0]))) {
            XCTAssertEqual("\($0)", "fc: 1 task ids for a batch of 2 samples")
        }
        XCTAssertThrowsError(try layer(x, Context.inference())) {
            XCTAssertEqual("\($0)", "fc: task ids are required (set Context.taskIDs, one per sample)")
        }
        var g = Xoshiro256(seed: 0)
        XCTAssertThrowsError(try PolyLinear(wrapping: Linear(6, 5, using: &g), path: "enc.q", r: 2, nTasks: 1, nSkills: 2, nSplits: 2, using: &g)) {
            XCTAssertEqual("\($0)", "enc.q: in_features 6 and out_features 5 must both be divisible by n_splits 2")
        }
    }

    func testDisabledAdapterEqualsBaseAndZeroInitIsIdentity() throws {
        let layer = try makeLayer()
        let x = Variable(randomTensor([3, 6], seed: 2))
        let ctx = Context.inference(taskIDs: [0, 1, 2])
        ctx.adaptersEnabled = false
        XCTAssertEqual(try layer(x, ctx).value, try layer.baseLayer(x, ctx).value)
        var g = Xoshiro256(seed: 4)
        let fresh = try PolyLinear(wrapping: Linear(6, 4, using: &g), path: "fc", r: 2, nTasks: 3, nSkills: 2, nSplits: 1, using: &g)
        let c2 = Context.inference(taskIDs: [0, 1, 2])
        XCTAssertEqual(try fresh(x, c2).value, try fresh.baseLayer(x, c2).value)
    }

    /// Training mode: relaxed Bernoulli draws from the context's generator are reproducible and differ per sample.
    func testTrainingModeSamplesPerSample() throws {
        let layer = try makeLayer()
        let x = Variable(randomTensor([2, 6], seed: 2))
        let c1 = Context(mode: .train, taskIDs: [1, 1], rng: Xoshiro256(seed: 9))
        let c2 = Context(mode: .train, taskIDs: [1, 1], rng: Xoshiro256(seed: 9))
        let rec = Recorder()
        c1.recorder = rec
        XCTAssertEqual(try layer(x, c1).value, try layer(x, c2).value)
        let w = rec["layer.fc.mixing_weights"]!
        XCTAssertEqual(w.shape, [2, 2, 3])
        XCTAssertNotEqual(try w.selecting(axis: 0, index: 0), try w.selecting(axis: 0, index: 1))
        assertClose(try w.sum(axes: [2]), Tensor.ones([2, 2]), rtol: 1e-5)
    }
}

final class LoRALinearTests: XCTestCase {
    func testForwardGradientsMergeUnmerge() throws {
        var g = Xoshiro256(seed: 2)
        let lora = try LoRALinear(wrapping: Linear(5, 3, using: &g), path: "fc", r: 2, alpha: 4, initialization: .random, using: &g)
        XCTAssertEqual(lora.namedParameters().map(\.name), ["base_layer.weight", "base_layer.bias", "lora_A.weight", "lora_B.weight"])
        XCTAssertEqual(lora.loraA.weight.value.shape, [2, 5])
        XCTAssertEqual(lora.loraB.weight.value.shape, [3, 2])
        let x = randomTensor([4, 5], seed: 3)
        let ctx = Context.inference()
        let y = try lora(Variable(x), ctx).value
        let expected = try (try x.matmul(lora.baseLayer.weight.value.T) + lora.baseLayer.bias!.value)
            + (try x.matmul(lora.loraA.weight.value.T).matmul(lora.loraB.weight.value.T) * 2)
        assertClose(y, expected, rtol: 1e-5)
        try paramGradCheck([lora.loraA.weight, lora.loraB.weight]) { try lora(Variable(x), Context()) }
        let disabled = Context.inference()
        disabled.adaptersEnabled = false
        let base = try lora(Variable(x), disabled).value
        try lora.merge()
        assertClose(try lora(Variable(x), ctx).value, y, rtol: 1e-5, atol: 1e-5)
        XCTAssertThrowsError(try lora(Variable(x), disabled)) {
            XCTAssertEqual("\($0)", "fc: the LoRA update is merged into the base weight; unmerge() before running with adapters disabled")
        }
        try lora.unmerge()
        assertClose(try lora(Variable(x), ctx).value, y, rtol: 1e-5, atol: 1e-5)
        assertClose(try lora(Variable(x), disabled).value, base, rtol: 1e-5, atol: 1e-5)
        let rs = try LoRALinear(wrapping: Linear(5, 3, using: &g), path: "fc", r: 4, alpha: 4, useRslora: true, using: &g)
        XCTAssertEqual(rs.scaling, 2)
    }

    func testInitialisationsAndDropout() throws {
        var g = Xoshiro256(seed: 8)
        let gauss = try LoRALinear(wrapping: Linear(64, 8, using: &g), path: "fc", r: 4, alpha: 8, initialization: .gaussian, using: &g)
        let a = gauss.loraA.weight.value.scalars
        let std = (a.map { $0 * $0 }.reduce(0, +) / Float(a.count)).squareRoot()
        XCTAssertEqual(std, 0.25, accuracy: 0.03)                       // N(0, 1/r)
        XCTAssertEqual(gauss.loraB.weight.value, Tensor.zeros([8, 4]))
        let kaiming = try LoRALinear(wrapping: Linear(64, 8, using: &g), path: "fc", r: 4, alpha: 8, using: &g)
        XCTAssertTrue(kaiming.loraA.weight.value.scalars.allSatisfy { Swift.abs($0) <= 0.125 })   // 1/sqrt(64)
        XCTAssertEqual(kaiming.loraB.weight.value, Tensor.zeros([8, 4]))
        let dropped = try LoRALinear(wrapping: Linear(64, 8, using: &g), path: "fc", r: 4, alpha: 8, dropout: 0.5,
                                     initialization: .random, using: &g)
        let x = Variable(randomTensor([3, 64], seed: 1))
        let eval = try dropped(x, Context.inference()).value
        XCTAssertEqual(try dropped(x, Context.inference()).value, eval)
        XCTAssertNotEqual(try dropped(x, Context(mode: .train, rng: Xoshiro256(seed: 2))).value, eval)
        XCTAssertThrowsError(try LoRALinear(wrapping: Linear(4, 4, using: &g), path: "fc", r: 0, alpha: 1, using: &g)) {
            XCTAssertEqual("\($0)", "fc: LoRA r must be positive, got 0")
        }
    }

    /// LoRA's forward fuses its update into the base matmuls (no recorder) and agrees with `base + delta` (a
    /// recorder asks for the base output apart) in values and gradients; with dropout in training it stays dense.
    func testFusedForwardMatchesBasePlusDelta() throws {
        var g = Xoshiro256(seed: 4)
        for dropout: Float in [0, 0.25] {
            let lora = try LoRALinear(wrapping: Linear(20, 18, using: &g), path: "fc", r: 3, alpha: 6, dropout: dropout,
                                      initialization: .random, using: &g)
            let x = randomTensor([2, 11, 20], seed: 5), seed = randomTensor([2, 11, 18], seed: 6)
            let ctx = Context(mode: .train, rng: Xoshiro256(seed: 1))
            if case .lowRank = try lora.update(Variable(x), ctx) { XCTAssertEqual(dropout, 0) } else { XCTAssertEqual(dropout, 0.25) }
            func run(recording: Bool) throws -> [Tensor] {
                for (_, p) in lora.namedParameters() { p.zeroGrad() }
                let ctx = Context(mode: .train, rng: Xoshiro256(seed: 1), recorder: recording ? Recorder() : nil)
                let xv = Variable(x, requiresGrad: true)
                let y = try lora(xv, ctx)
                try y.backward(seed: seed)
                return [y.value, xv.grad!, lora.loraA.weight.grad!, lora.loraB.weight.grad!]
            }
            for (i, (a, b)) in zip(try run(recording: false), try run(recording: true)).enumerated() {
                assertClose(a, b, rtol: 1e-5, atol: 1e-6, "dropout \(dropout): tensor \(i)")
            }
        }
    }

    /// Poly with one skill, one split and one task is LoRA with lora_alpha = 1 (scale 1/r).
    func testPolyWithOneSkillEqualsLoRAAlphaOne() throws {
        var g = Xoshiro256(seed: 5)
        let base = Linear(6, 4, using: &g)
        let poly = try PolyLinear(wrapping: base, path: "fc", r: 3, nTasks: 1, nSkills: 1, nSplits: 1, initWeights: false, using: &g)
        let lora = try LoRALinear(wrapping: base, path: "fc", r: 3, alpha: 1, initialization: .random, using: &g)
        lora.loraA.weight.value = try poly.loraA.value.reshaped([6, 3]).T.contiguous()       // [r, in]
        lora.loraB.weight.value = try poly.loraB.value.reshaped([3, 4]).T.contiguous()       // [out, r]
        let x = Variable(randomTensor([5, 6], seed: 6))
        assertClose(try poly(x, Context.inference(taskIDs: [0, 0, 0, 0, 0])).value, try lora(x, Context.inference()).value, rtol: 1e-5, atol: 1e-6)
    }
}
