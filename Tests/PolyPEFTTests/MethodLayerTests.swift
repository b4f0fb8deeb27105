import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// IA3, DoRA, LoRA's bias options and nested adapters, layer by layer: forward against the formula, gradients
/// against finite differences (or, where PEFT detaches part of the graph, against the closed form), merge and unmerge.
final class MethodLayerTests: XCTestCase {
    /// `x W^T + b` of a Linear.
    func baseOutput(_ l: Linear, _ x: Tensor) throws -> Tensor {
        try x.matmul(l.weight.value.T) + l.bias!.value
    }

    func testIA3ScalesOutputOrInputAndMergesExactly() throws {
        var g = Xoshiro256(seed: 1)
        let x = randomTensor([4, 6], seed: 2)
        for feedforward in [false, true] {
            let base = Linear(6, 5, using: &g)
            let ia3 = IA3Layer(wrapping: base, path: "fc", feedforward: feedforward, initWeights: false, using: &g)
            XCTAssertEqual(ia3.adapterParameters().map(\.name), ["ia3_l"])
            XCTAssertEqual(ia3.scale.value.shape, feedforward ? [1, 6] : [5, 1])
            let y = try ia3(Variable(x), Context.inference()).value
            let expected = feedforward ? try baseOutput(base, try x * ia3.scale.value)
                                       : try baseOutput(base, x) * ia3.scale.value.reshaped([1, 5])
            assertClose(y, expected, rtol: 1e-5, "feedforward \(feedforward)")
            try paramGradCheck([ia3.scale]) { try ia3(Variable(x), Context()) }
            try gradCheck([x]) { v in try ia3(v[0], Context()) }
            let before = base.weight.value, beforeBias = base.bias!.value
            try ia3.merge()
            assertClose(try ia3(Variable(x), Context.inference()).value, y, rtol: 1e-5, atol: 1e-6, "merged")
            assertClose(try baseOutput(base, x), y, rtol: 1e-5, atol: 1e-6, "merged base alone")
            let off = Context.inference()
            off.adaptersEnabled = false
            XCTAssertThrowsError(try ia3(Variable(x), off)) {
                XCTAssertEqual("\($0)", "fc: the IA3 scaling is merged into the base weight; unmerge() before running with adapters disabled")
            }
            try ia3.unmerge()
            assertClose(base.weight.value, before, rtol: 1e-6, atol: 1e-6)
            assertClose(base.bias!.value, beforeBias, rtol: 1e-6, atol: 1e-6)
        }
        let zero = IA3Layer(wrapping: Linear(3, 2, using: &g), path: "z", feedforward: false, using: &g)
        zero.scale.value = Tensor.zeros([2, 1])
        XCTAssertThrowsError(try zero.merge()) {
            XCTAssertEqual("\($0)", "z: ia3_l[0] is 0, so the merge could not be undone; refusing to merge")
        }
    }

    func testDoRAForwardGradientsAndMerge() throws {
        var g = Xoshiro256(seed: 3)
        let base = Linear(7, 5, using: &g)
        let dora = try LoRALinear(wrapping: base, path: "fc", r: 2, alpha: 3, useDora: true, initialization: .random, using: &g)
        XCTAssertEqual(dora.adapterParameters().map(\.name), ["lora_magnitude_vector", "lora_A.weight", "lora_B.weight"])
        let w = base.weight.value, a = dora.loraA.weight.value, b = dora.loraB.weight.value, s = dora.scaling
        // The magnitude starts at the row norms of W + s B A, so the layer starts as plain LoRA.
        let combined = try w + (try b.matmul(a) * s)
        assertClose(dora.magnitude!.value, try rowNorms(combined), rtol: 1e-6)
        dora.magnitude!.value = try dora.magnitude!.value * randomTensor([5], seed: 4, low: 0.5, high: 1.5)
        let x = randomTensor([3, 2, 7], seed: 5)
        let gain = try dora.magnitude!.value / rowNorms(combined)                               // [out]
        let lowRank = try x.matmul(a.T).matmul(b.T) * s                                         // [3, 2, out]
        let expected = try (try (try x.matmul(w.T)) + lowRank) * gain + base.bias!.value
        assertClose(try dora(Variable(x), Context.inference()).value, expected, rtol: 1e-5)
        // Training forward (recorded) gives the same values, and the magnitude's gradient matches finite differences.
        assertClose(try dora(Variable(x), Context()).value, expected, rtol: 1e-5)
        try paramGradCheck([dora.magnitude!]) { try dora(Variable(x), Context()) }
        // A and B: PEFT treats the row norm as a constant, so compare with the closed form
        // G = dY * g,  dB = s G^T (x A^T),  dA = s B^T G^T x.
        let cot = randomTensor([3, 2, 5], seed: 6)
        dora.zeroGrad()
        try (try dora(Variable(x), Context()) * Variable(cot)).sum().backward()
        let gm = try (cot * gain).reshaped([6, 5]), xm = try x.reshaped([6, 7])
        assertClose(dora.loraB.weight.grad!, try gm.T.matmul(try xm.matmul(a.T)) * s, rtol: 1e-4, atol: 1e-5, "dB")
        assertClose(dora.loraA.weight.grad!, try b.T.matmul(gm.T).matmul(xm) * s, rtol: 1e-4, atol: 1e-5, "dA")
        // Merge: W' = g (W + s B A) by rows, bias unchanged; unmerge restores W.
        try dora.merge()
        assertClose(try baseOutput(base, x), expected, rtol: 1e-5, atol: 1e-5, "merged")
        assertClose(try dora(Variable(x), Context.inference()).value, expected, rtol: 1e-5, atol: 1e-5)
        try dora.unmerge()
        assertClose(base.weight.value, w, rtol: 1e-5, atol: 1e-6)
    }

    func testDoRADropoutActsOnTheLowRankInputOnly() throws {
        var g = Xoshiro256(seed: 7)
        let base = Linear(6, 4, using: &g)
        let dora = try LoRALinear(wrapping: base, path: "fc", r: 2, alpha: 2, dropout: 0.5, useDora: true,
                                  initialization: .random, using: &g)
        let x = randomTensor([5, 6], seed: 8)
        let ctx = Context(mode: .train, rng: Xoshiro256(seed: 9))
        var rng = ctx.rng
        let dropped = try Variable(x).dropout(p: 0.5, using: &rng).value
        let y = try dora(Variable(x), ctx).value
        let w = base.weight.value, a = dora.loraA.weight.value, b = dora.loraB.weight.value
        let gain = try dora.magnitude!.value / rowNorms(try w + (try b.matmul(a) * dora.scaling))
        let expected = try (try x.matmul(w.T) + (try dropped.matmul(a.T).matmul(b.T) * dora.scaling)) * gain + base.bias!.value
        assertClose(y, expected, rtol: 1e-5)
    }

    func testLoraBiasShiftsAndMergesIntoTheBaseBias() throws {
        var g = Xoshiro256(seed: 10)
        let base = Linear(5, 3, using: &g)
        let lora = try LoRALinear(wrapping: base, path: "fc", r: 2, alpha: 4, loraBias: true, initialization: .random, using: &g)
        XCTAssertEqual(lora.adapterParameters().map(\.name), ["lora_A.weight", "lora_B.weight", "lora_B.bias"])
        let x = randomTensor([4, 5], seed: 11)
        let expected = try baseOutput(base, x)
            + ((try x.matmul(lora.loraA.weight.value.T).matmul(lora.loraB.weight.value.T) + lora.loraB.bias!.value) * 2)
        let y = try lora(Variable(x), Context.inference()).value
        assertClose(y, expected, rtol: 1e-5)
        try paramGradCheck([lora.loraA.weight, lora.loraB.weight, lora.loraB.bias!]) { try lora(Variable(x), Context()) }
        try lora.merge()
        assertClose(try baseOutput(base, x), y, rtol: 1e-5, atol: 1e-5)
        try lora.unmerge()
        assertClose(try lora(Variable(x), Context.inference()).value, y, rtol: 1e-5, atol: 1e-5)
    }

    func testLoraBiasMergeIntoABiasFreeBaseChangesNothing() throws {
        var g = Xoshiro256(seed: 16)
        let base = Linear(4, 3, bias: false, using: &g)
        let lora = try LoRALinear(wrapping: base, path: "fc", r: 2, alpha: 2, loraBias: true, initialization: .random, using: &g)
        let before = base.weight.value
        XCTAssertThrowsError(try lora.merge()) {
            XCTAssertEqual("\($0)", "fc: lora_bias needs the base layer to have a bias to merge into")
        }
        XCTAssertEqual(base.weight.value, before)
        XCTAssertFalse(lora.isMerged)
        XCTAssertThrowsError(try LoRALinear(wrapping: Linear(4, 3, using: &g), path: "fc", r: 2, alpha: 2, useDora: true,
                                            loraBias: true, using: &g)) {
            XCTAssertEqual("\($0)", "fc: DoRA with lora_bias is not supported (PEFT rejects it too)")
        }
    }

    func testNestedAdaptersComposeOnOneLayer() throws {
        var g = Xoshiro256(seed: 12)
        let base = Linear(6, 4, using: &g)
        let lora = try LoRALinear(wrapping: base, path: "fc", r: 2, alpha: 2, initialization: .random, using: &g)
        let ia3 = IA3Layer(wrapping: lora, path: "fc", feedforward: false, initWeights: false, using: &g)
        XCTAssertEqual(ia3.namedParameters().map(\.name),
                       ["ia3_l", "base_layer.base_layer.weight", "base_layer.base_layer.bias", "base_layer.lora_A.weight",
                        "base_layer.lora_B.weight"])
        XCTAssertEqual(ia3.adapterParameters().map(\.name), ["ia3_l"])
        let x = randomTensor([3, 6], seed: 13)
        let inner = try lora(Variable(x), Context.inference()).value
        assertClose(try ia3(Variable(x), Context.inference()).value, try inner * ia3.scale.value.reshaped([1, 4]), rtol: 1e-5)
        try paramGradCheck([ia3.scale, lora.loraA.weight, lora.loraB.weight]) { try ia3(Variable(x), Context()) }
        XCTAssertThrowsError(try ia3.merge()) {
            XCTAssertEqual("\($0)", "fc: merging IA3 needs a Linear base layer, got LoRALinear")
        }
    }

    func testPeftModelTrainsAndSavesBiasesAsPEFT() throws {
        func mlp() throws -> MLP {
            var g = Xoshiro256(seed: 14)
            return try MLP([.linear(name: "fc1", inFeatures: 4, outFeatures: 6, bias: true), .activation(.relu),
                            .linear(name: "fc2", inFeatures: 6, outFeatures: 3, bias: true)], using: &g)
        }
        var g = Xoshiro256(seed: 15)
        for (bias, keys) in [("all", ["fc1.base_layer.bias", "fc2.bias"]), ("lora_only", ["fc1.base_layer.bias"]), ("none", [])] {
            var c = LoraConfig(r: 2, loraAlpha: 2, targetModules: .names(["fc1"]))
            c.bias = bias
            let peft = try PeftModel(wrapping: try mlp(), config: c, using: &g)
            XCTAssertEqual(peft.trainedBaseParameters.map(\.key), keys.map { PeftModel.keyPrefix + $0 }, bias)
            XCTAssertTrue(peft.trainedBaseParameters.allSatisfy(\.parameter.requiresGrad), bias)
            XCTAssertEqual(Set(try peft.adapterTensors().keys).isSuperset(of: keys.map { PeftModel.keyPrefix + $0 }), true, bias)
        }
    }

    func testIA3DefaultsAndFeedforwardMatchingAsPEFT() throws {
        let c = IA3Config()
        XCTAssertEqual(IA3Config.defaultTargetModules(modelType: "bert"), ["key", "value", "output.dense"])
        var bert = c
        bert.feedforwardModules = .names(["output.dense"])
        // PEFT's feed-forward test is a plain suffix test, so the attention output projection counts too.
        XCTAssertTrue(try bert.isFeedforward("encoder.layer.0.attention.output.dense", model: nil))
        XCTAssertFalse(try bert.isFeedforward("encoder.layer.0.attention.self.key", model: nil))
        XCTAssertThrowsError(try IA3Config(json: ["peft_type": "IA3", "target_modules": ["fc1"], "feedforward_modules": ["fc2"]])) {
            XCTAssertEqual("\($0)", "adapter_config.json: feedforward_modules entry 'fc2' is not in target_modules (it must be a subset)")
        }
    }
}
