import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class RoutingOptionsTests: XCTestCase {
    func makeLayer(splits: Int = 2, mixing: MixingMode = .parameters, options: RoutingOptions = RoutingOptions()) throws -> PolyLinear {
        var g = Xoshiro256(seed: 3)
        let layer = try PolyLinear(wrapping: Linear(6, 4, using: &g), path: "fc", r: 2, nTasks: 3, nSkills: 3, nSplits: splits,
                                   initWeights: false, mixing: mixing, using: &g)
        layer.router.moduleLogits.value = Tensor.normal([3, splits * 3], std: 1.5, using: &g)
        layer.router.options = options
        return layer
    }

    /// FD checks of every parameter and the input, with PEFT noise injected and a fixed generator per call.
    func checkGradients(_ options: RoutingOptions, modes: [Context.Mode] = [.train, .eval], file: StaticString = #filePath, line: UInt = #line) throws {
        for mixing in MixingMode.allCases {
            for mode in modes {
                let layer = try makeLayer(mixing: mixing, options: options)
                let x = randomTensor([4, 6], seed: 5)
                let noise = randomTensor([4, 2, 3], seed: 6, low: 0.05, high: 0.95)
                func run(_ v: Variable) throws -> Variable {
                    let ctx = Context(mode: mode, taskIDs: [1, 0, 1, 2], rng: Xoshiro256(seed: 11))
                    ctx.injectedUniformDraws["fc"] = noise
                    return try layer(v, ctx)
                }
                try paramGradCheck([layer.loraA, layer.loraB, layer.router.moduleLogits], file: file, line: line) { try run(Variable(x)) }
                try gradCheck([x], file: file, line: line) { try run($0[0]) }
            }
        }
    }

    func testGradientsWithTemperature() throws { try checkGradients(RoutingOptions(temperature: 0.5), modes: [.train]) }
    func testGradientsWithDropout() throws { try checkGradients(RoutingOptions(dropout: 0.3), modes: [.train]) }
    func testGradientsWithSharedSkill() throws { try checkGradients(RoutingOptions(sharedSkill: true)) }

    func testDropoutIsSeededAndTrainingOnly() throws {
        let layer = try makeLayer(options: RoutingOptions(dropout: 0.5))
        let x = Variable(randomTensor([4, 6], seed: 1))
        func weights(_ mode: Context.Mode, seed: UInt64) throws -> Tensor {
            let ctx = Context(mode: mode, taskIDs: [0, 0, 0, 0], rng: Xoshiro256(seed: seed), recorder: Recorder())
            _ = try layer(x, ctx)
            return ctx.recorder!["layer.fc.mixing_weights"]!
        }
        XCTAssertEqual(try weights(.train, seed: 4), try weights(.train, seed: 4))
        XCTAssertNotEqual(try weights(.train, seed: 4), try weights(.train, seed: 5))
        XCTAssertTrue(try weights(.train, seed: 4).scalars.contains(0))          // some skills dropped
        let plain = try makeLayer()
        let c = Context.inference(taskIDs: [0, 0, 0, 0])
        XCTAssertEqual(try layer(x, c).value, try plain(x, c).value)               // no dropout in evaluation
    }

    func testSharedSkillIsAlwaysOn() throws {
        let layer = try makeLayer(options: RoutingOptions(sharedSkill: true))
        layer.router.moduleLogits.value = Tensor(repeating: -30, shape: [3, 6])    // every routed skill off
        let w = try layer.router.allocation()                                      // [3, 2, 3]
        for t in 0..<3 { for s in 0..<2 { XCTAssertEqual(w[t, s, 2], 1, accuracy: 1e-6); XCTAssertEqual(w[t, s, 0], 0, accuracy: 1e-6) } }
    }

    /// Hard 0/1 forward; the gradient is that of the soft surrogate normalize(round(P0) + P(L) - P0), checked by
    /// finite differences of the surrogate at L0.
    func testStraightThroughForwardAndGradient() throws {
        for mode in [Context.Mode.eval, .train] {
            let layer = try makeLayer(options: RoutingOptions(straightThrough: true))
            var l0 = layer.router.moduleLogits.value.scalars
            for i in stride(from: 0, to: l0.count, by: 3) { l0[i] = Swift.abs(l0[i]) + 0.5 }      // one skill on per split
            layer.router.moduleLogits.value = Tensor(l0, shape: [3, 6])
            let noise = randomTensor([3, 2, 3], seed: 8, low: 0.05, high: 0.95)
            let cot = randomTensor([3, 2, 3], seed: 9)
            let ctx = Context(mode: mode)
            let w = try layer.router.weights(rowTasks: [0, 1, 2], ctx, noise: noise)
            XCTAssertTrue(w.value.scalars.allSatisfy { v in [0, 1, 0.5, 1 / 3].contains { Swift.abs($0 - v) < 1e-6 } }, "\(w.value.scalars)")
            layer.router.moduleLogits.zeroGrad()
            try (try w * Variable(cot)).sum().backward()
            let analytic = layer.router.moduleLogits.grad!
            // The soft probabilities P(L) the estimator differentiates.
            func soft(_ l: Tensor) throws -> Tensor {
                let lv = try l.reshaped([3, 2, 3])
                return mode == .eval ? lv.sigmoid() : try RelaxedBernoulli.sample(logits: Variable(lv), uniform: noise, temperature: 1).value
            }
            let p0 = try soft(layer.router.moduleLogits.value)
            let hard = p0.map { $0 > 0.5 ? 1 : 0 }
            func surrogate(_ l: Tensor) throws -> Double {
                let q = try (try hard + soft(l)) - p0
                let wq = try q / (try q.sum(axes: [2], keepDims: true) + 1e-12)
                return zip(wq.contiguous().scalars, cot.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            }
            var numeric = [Float](repeating: 0, count: l0.count)
            let h: Float = 1e-2
            for i in 0..<l0.count {
                var up = l0, down = l0
                up[i] += h; down[i] -= h
                numeric[i] = Float((try surrogate(Tensor(up, shape: [3, 6])) - (try surrogate(Tensor(down, shape: [3, 6])))) / Double(2 * h))
            }
            assertClose(analytic, Tensor(numeric, shape: [3, 6]), rtol: 1e-2, atol: 1e-3, "straight-through \(mode)")
        }
    }

    func testTemperatureSchedule() throws {
        XCTAssertEqual(TemperatureSchedule.constant(0.7).temperature(step: 50), 0.7)
        let lin = TemperatureSchedule.linear(from: 1, to: 0.2, steps: 8)
        XCTAssertEqual(lin.temperature(step: 0), 1)
        XCTAssertEqual(lin.temperature(step: 4), 0.6, accuracy: 1e-6)
        XCTAssertEqual(lin.temperature(step: 100), 0.2, accuracy: 1e-6)
        let exp = TemperatureSchedule.exponential(from: 1, to: 0.01, steps: 10)
        XCTAssertEqual(exp.temperature(step: 5), 0.1, accuracy: 1e-6)
        XCTAssertEqual(exp.temperature(step: 10), 0.01, accuracy: 1e-7)
        XCTAssertThrowsError(try TemperatureSchedule.linear(from: 1, to: 0, steps: 5).validate())
        let peft = try routingTestModel()
        try peft.setRoutingTemperature(lin.temperature(step: 4))
        XCTAssertEqual(peft.polyLayers.map(\.layer.router.temperature), [0.6, 0.6])
        guard let c = peft.config as? PolyConfig else { return XCTFail() }
        XCTAssertEqual(c.routing.temperature, 0.6)
        XCTAssertThrowsError(try peft.setRoutingTemperature(0)) { XCTAssertEqual("\($0)", "routing options: temperature must be a positive number, got 0.0") }
    }

    func testConfigKeyOnlyWhenNotDefault() throws {
        XCTAssertNil(PolyConfig().json["polypeft_routing"])
        var c = PolyConfig(r: 2)
        c.routing = RoutingOptions(straightThrough: true, temperature: 0.5, dropout: 0.1, sharedSkill: true, granularity: .prefix(3), unknownTasks: .uniform)
        let json = c.json
        XCTAssertEqual(json["polypeft_routing"], ["straight_through": true, "temperature": 0.5, "dropout": 0.1,
                                                  "shared_skill": true, "granularity": "prefix:3", "unknown_tasks": "uniform"])
        XCTAssertEqual(try PolyConfig(json: json), c)
        XCTAssertThrowsError(try PolyConfig(json: ["polypeft_routing": ["hard": true]])) {
            XCTAssertTrue("\($0)".contains("unknown routing option 'hard'"), "\($0)")
        }
        XCTAssertThrowsError(try PolyConfig(json: ["polypeft_routing": ["granularity": "block"]])) {
            XCTAssertTrue("\($0)".contains("granularity must be \"layer\", \"model\" or \"prefix:<n>\""), "\($0)")
        }
        XCTAssertThrowsError(try PolyConfig(json: ["polypeft_routing": ["dropout": 1.0]]))
    }

    /// Default options leave the forward and gradients of the PEFT-exact layer untouched, bit for bit.
    func testDefaultsAreBitIdentical() throws {
        let a = try makeLayer(), b = try makeLayer()
        b.router.options = RoutingOptions(straightThrough: false, temperature: 1, dropout: 0, sharedSkill: false)
        let x = randomTensor([4, 6], seed: 2)
        for mode in [Context.Mode.eval, .train] {
            let ca = Context(mode: mode, taskIDs: [0, 1, 2, 1], rng: Xoshiro256(seed: 3))
            let cb = Context(mode: mode, taskIDs: [0, 1, 2, 1], rng: Xoshiro256(seed: 3))
            let ya = try a(Variable(x), ca), yb = try b(Variable(x), cb)
            XCTAssertEqual(ya.value, yb.value)
            try ya.squared().sum().backward()
            try yb.squared().sum().backward()
            XCTAssertEqual(a.router.moduleLogits.grad, b.router.moduleLogits.grad)
        }
    }

    func testUnknownTaskFallsBackToUniformOnlyWhenAsked() throws {
        let tasks = try TaskTable(["a", "b", "c"])
        let strict = try routingTestModel()
        let x = randomTensor([2, 6], seed: 4)
        XCTAssertThrowsError(try tasks.ids(for: ["a", "zzz"]))
        let ids = try tasks.ids(for: ["a", "zzz"], unknown: .uniform)
        XCTAssertThrowsError(try forward(strict, x, .inference(taskIDs: ids))) {
            XCTAssertEqual("\($0)", "fc1: task id -1 of sample 1 is out of range 0..<3")
        }
        let lenient = try routingTestModel(routing: RoutingOptions(unknownTasks: .uniform))
        let rec = Recorder()
        let ctx = Context(mode: .eval, taskIDs: ids, recordsGradients: false, recorder: rec)
        let y = try forward(lenient, x, ctx).value
        let w = rec["layer.fc1.mixing_weights"]!                                  // [2, S, K]
        for s in 0..<2 { for k in 0..<3 { XCTAssertEqual(w[1, s, k], 1.0 / 3, accuracy: 1e-7) } }
        // The known sample is unaffected; the unknown one equals a task whose logits are all equal.
        assertClose(try y.selecting(axis: 0, index: 0), try forward(strict, x, .inference(taskIDs: [0, 0])).value.selecting(axis: 0, index: 0),
                    rtol: 1e-6, atol: 1e-7)
        for (_, l) in strict.polyLayers { l.router.moduleLogits.value = Tensor.zeros([3, 6]) }
        assertClose(try y.selecting(axis: 0, index: 1), try forward(strict, x, .inference(taskIDs: [2, 2])).value.selecting(axis: 0, index: 1),
                    rtol: 1e-6, atol: 1e-7)
    }

    func testRouterSharedByAllLayers() throws {
        let peft = try routingTestModel(routing: RoutingOptions(granularity: .model))
        let (l1, l2) = (peft.polyLayers[0].layer, peft.polyLayers[1].layer)
        XCTAssertTrue(l1.router === l2.router)
        XCTAssertTrue(l1.router.moduleLogits === l2.router.moduleLogits)
        // fc1 A 36 + B 48, fc2 A 48 + B 24, one router 3 x 6 = 18 (counted once); base 102.
        XCTAssertEqual(peft.parameterSummary(), "trainable params: 174 || all params: 276 || trainable%: 63.0435")
        XCTAssertEqual(peft.adapterParameters().filter { $0.key.hasSuffix("module_logits") }.count, 2)
        XCTAssertEqual(peft.trainableAdapterParameters().map(\.key), [
            "base_model.model.fc1.poly_lora_A", "base_model.model.fc1.poly_lora_B", "base_model.model.fc1.poly_router.module_logits",
            "base_model.model.fc2.poly_lora_A", "base_model.model.fc2.poly_lora_B"])
        // The shared gradient sums both layers' contributions.
        let x = randomTensor([3, 6], seed: 5)
        try paramGradCheck([l1.router.moduleLogits]) { try forward(peft, x, Context(taskIDs: [0, 2, 1])) }
        // Saved with the same logits under each layer's key; reloaded shared again.
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let re = try PeftModel.load(from: dir, into: try routingTestMLP())
        XCTAssertTrue(re.polyLayers[0].layer.router === re.polyLayers[1].layer.router)
        let ctx = Context.inference(taskIDs: [0, 2, 1])
        XCTAssertEqual(try forward(re, x, ctx).value, try forward(peft, x, ctx).value)
        var edited = try peft.adapterTensors()
        edited["base_model.model.fc2.poly_router.module_logits"] = Tensor.zeros([3, 6])
        XCTAssertThrowsError(try re.loadAdapterTensors(edited)) {
            XCTAssertEqual("\($0)", "adapter: 'base_model.model.fc2.poly_router.module_logits' and 'base_model.model.fc1.poly_router.module_logits' are one shared parameter here (e.g. a router shared by layers) but the file holds different values; load with unshared parameters (per-layer routers)")
        }
        // Back to one router per layer: independent copies.
        try peft.setRoutingOptions(RoutingOptions())
        XCTAssertFalse(peft.polyLayers[0].layer.router === peft.polyLayers[1].layer.router)
        XCTAssertEqual(try forward(peft, x, ctx).value, try forward(re, x, ctx).value)
        XCTAssertEqual(RouterGranularity.prefix(3).key(for: "encoder.block.0.layer.0.SelfAttention.q"), "encoder.block.0")
    }
}
