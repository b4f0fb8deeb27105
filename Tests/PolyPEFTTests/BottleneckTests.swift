import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Bottleneck adapters (sequential, double, parallel) and Compacter's PHM projections: configs as the adapters library
/// writes them, gradients by finite differences, saving and loading, layer numbering, and the PHM weight against a
/// naive Kronecker sum. Exactness against the adapters library is in `BottleneckGoldenTests`.
final class BottleneckTests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testPresetsHaveTheAdaptersLibrarysDefaultsAndRoundTripThroughJSON() throws {
        let seq = BnConfig.seqBn()
        XCTAssertEqual(seq.locations, [.feedForward])
        XCTAssertTrue(seq.originalLNBefore)
        XCTAssertEqual(seq.reductionFactor, .uniform(16))
        XCTAssertEqual(seq.nonLinearity, "relu")
        let houlsby = BnConfig.doubleSeqBn()
        XCTAssertEqual(houlsby.locations, [.attention, .feedForward])
        XCTAssertEqual(houlsby.nonLinearity, "swish")
        XCTAssertFalse(houlsby.originalLNBefore)
        let par = BnConfig.parBn()
        XCTAssertTrue(par.isParallel)
        XCTAssertEqual(par.scaling, .constant(4))
        XCTAssertEqual(par.initWeights, .mamAdapter)
        XCTAssertEqual(par.reductionFactor, .uniform(2))
        let compacter = BnConfig.compacter()
        XCTAssertTrue(compacter.phmLayer)
        XCTAssertEqual(compacter.reductionFactor, .uniform(32))
        XCTAssertEqual(compacter.nonLinearity, "gelu")
        XCTAssertEqual(BnConfig.compacterPlusPlus().locations, [.feedForward])

        var c = BnConfig.doubleSeqBn(reductionFactor: 4)
        c.reductionFactor = .perLayer(["0": 2, "default": 8])
        c.scaling = .channel
        c.residualBeforeLN = .adapterInput
        c.leaveOut = [1]
        let json = c.json
        XCTAssertEqual(json["peft_type"], "POLYPEFT_BOTTLENECK")
        XCTAssertEqual(json["reduction_factor"], .object(["0": .int(2), "default": .int(8)]))
        XCTAssertEqual(json["scaling"], "channel")
        XCTAssertEqual(json["residual_before_ln"], false)
        XCTAssertEqual(json["leave_out"], .array([.int(1)]))
        XCTAssertEqual(json["inv_adapter"], .null)
        XCTAssertNil(json["target_modules"], "placed by location: no target fields")
        let back = try BnConfig(json: json)
        XCTAssertEqual(back.json, json)
        XCTAssertEqual(back.reductionFactor, c.reductionFactor)
        XCTAssertEqual(back.scaling, .channel)
        XCTAssertEqual(back.residualBeforeLN, .adapterInput)
        XCTAssertEqual(back.leaveOut, [1])
        XCTAssertTrue(back.warnings.isEmpty, "\(back.warnings)")
        XCTAssertEqual(try PeftMethods.config(json: json).peftType, "POLYPEFT_BOTTLENECK")
        XCTAssertEqual(try c.bottleneckSize(hidden: 16, layer: 0), 8)
        XCTAssertEqual(try c.bottleneckSize(hidden: 16, layer: 3), 2)
        XCTAssertEqual(try BnConfig.seqBn(reductionFactor: 3).bottleneckSize(hidden: 16, layer: 0), 5, "floor(16 / 3)")
        XCTAssertEqual(try BnConfig.seqBn(reductionFactor: 64).bottleneckSize(hidden: 16, layer: 0), 1, "at least 1")
        var post = BnConfig.seqBn()
        post.residualBeforeLN = .postAdd
        XCTAssertEqual(try BnConfig(json: post.json).residualBeforeLN, .postAdd)
    }

    func testConfigErrorsNameTheKey() throws {
        func error(_ edit: (inout [String: JSONValue]) -> Void) -> String {
            var o = BnConfig.seqBn().json.objectValue!
            edit(&o)
            return message { _ = try BnConfig(json: .object(o)) }
        }
        XCTAssertTrue(error { $0["non_linearity"] = "quick_gelu" }.contains("non_linearity 'quick_gelu'"))
        XCTAssertTrue(error { $0["reduction_factor"] = 0 }.contains("reduction_factor must be a finite number above 0"))
        XCTAssertTrue(error { $0["reduction_factor"] = "big" }.contains("reduction_factor"))
        XCTAssertTrue(error { $0["reduction_factor"] = .object(["x": 2]) }.contains("reduction_factor key 'x'"))
        XCTAssertTrue(error { $0["scaling"] = "huge" }.contains("scaling"))
        XCTAssertTrue(error { $0["residual_before_ln"] = "pre_add" }.contains("residual_before_ln"))
        XCTAssertTrue(error { $0["inv_adapter"] = "nice" }.contains("inv_adapter"))
        XCTAssertTrue(error { $0["phm_layer"] = true; $0["shared_W_phm"] = true; $0["factorized_phm_W"] = false }
            .contains("shared_W_phm needs factorized_phm_W true"))
        XCTAssertTrue(error { $0["phm_layer"] = true; $0["shared_W_phm"] = true; $0["reduction_factor"] = .object(["default": 2]) }
            .contains("shared_W_phm needs one whole reduction_factor"))
        XCTAssertTrue(error { $0["phm_layer"] = true; $0["shared_W_phm"] = true; $0["reduction_factor"] = 2.5 }
            .contains("shared_W_phm needs one whole reduction_factor"))
        XCTAssertTrue(error { $0["stochastic_depth"] = 0.1 }.contains("stochastic_depth"))
        XCTAssertTrue(error { $0["dropout"] = 1.5 }.contains("dropout"))
        XCTAssertTrue(error { $0["leave_out"] = .array([-1]) }.contains("leave_out"))
        XCTAssertTrue(error { $0["output_adapter"] = false }.contains("no location enabled"))
        XCTAssertTrue(error { $0["original_ln_before"] = false; $0["residual_before_ln"] = "post_add" }.contains("post_add"))
        XCTAssertTrue(error { $0["phm_layer"] = true; $0["init_weights"] = "houlsby" }.contains("init_weights \"houlsby\" with phm_layer"))
        XCTAssertTrue(error { $0["phm_layer"] = true; $0["hypercomplex_nonlinearity"] = "odd" }.contains("hypercomplex_nonlinearity"))
        XCTAssertTrue(error { $0["peft_type"] = "LORA" }.contains("peft_type"))

        // Errors that need the model: a layer without a factor, sizes PHM cannot split, a model without slots.
        var noDefault = BnConfig.seqBn()
        noDefault.reductionFactor = .perLayer(["0": 2])
        var rng = Xoshiro256(seed: 1)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        XCTAssertTrue(message { _ = try PeftModel(wrapping: bert, config: noDefault, using: &rng) }.contains("no factor for layer 1"))
        XCTAssertNil(try bert.child("encoder")!.namedModules().compactMap { ($0.module as? any ResidualSlotHost) }.first!.residualJoin,
                     "a failed attach installs nothing")
        var odd = BnConfig.compacter(reductionFactor: 2, phmDim: 3)
        odd.mhAdapter = false
        XCTAssertTrue(message { _ = try PeftModel(wrapping: bert, config: odd, using: &rng) }.contains("not divisible by phm_dim 3"))
        let mlp = try MLP([.linear(name: "fc", inFeatures: 4, outFeatures: 4, bias: true)], using: &rng)
        XCTAssertTrue(message { _ = try PeftModel(wrapping: mlp, config: BnConfig.seqBn(), using: &rng) }.contains("residual slots"))
        var all = BnConfig.seqBn(reductionFactor: 2)
        all.leaveOut = [0, 1]
        XCTAssertTrue(message { _ = try PeftModel(wrapping: bert, config: all, using: &rng) }.contains("no slot"))
        _ = try PeftModel(wrapping: bert, config: BnConfig.seqBn(reductionFactor: 2), using: &rng)
        XCTAssertTrue(message { _ = try PeftModel(wrapping: bert, config: BnConfig.parBn(), using: &rng) }.contains("already filled"))
    }

    /// Every adapter parameter's gradient by finite differences, on BERT (post-norm joins) and T5 (pre-norm, decoder
    /// self- and cross-attention slots), for each placement and the options that change the maths.
    func testGradientsMatchFiniteDifferences() throws {
        // Smooth non-linearities throughout: finite differences across ReLU's kink are not a fair check (the golden
        // cases check ReLU against the adapters library).
        var seqSmooth = BnConfig.seqBn(reductionFactor: 2)
        seqSmooth.nonLinearity = "gelu_new"
        var options = BnConfig.doubleSeqBn(reductionFactor: 2)
        options.lnBefore = true
        options.lnAfter = true
        options.adapterResidualBeforeLN = true
        options.residualBeforeLN = .adapterInput
        options.originalLNBefore = true
        options.scaling = .channel
        options.useGating = true
        options.nonLinearity = "tanh"
        var postAdd = BnConfig.seqBn(reductionFactor: 2)
        postAdd.residualBeforeLN = .postAdd
        postAdd.scaling = .learned
        postAdd.nonLinearity = "gelu"
        var parallel = BnConfig.parBn(reductionFactor: 2)
        parallel.lnBefore = true
        parallel.useGating = true        // (not with ln_after: the new norm cancels a per-sample gate but for eps)
        parallel.nonLinearity = "silu"
        var parallelNorm = BnConfig.parBn(reductionFactor: 2)
        parallelNorm.lnAfter = true
        parallelNorm.nonLinearity = "tanh"
        var compacter = BnConfig.compacter(reductionFactor: 2, phmDim: 2)
        compacter.sharedPhmRule = false
        compacter.factorizedPhmRule = true
        compacter.factorizedPhmW = false
        var sharedW = BnConfig.compacter(reductionFactor: 2, phmDim: 2)
        sharedW.sharedWPhm = true
        var cross = BnConfig.doubleSeqBn(reductionFactor: 2)
        cross.crossAdapter = true
        let cases: [(String, BnConfig, Bool)] = [
            ("seqBn bert", seqSmooth, false), ("options bert", options, false),
            ("post_add bert", postAdd, false), ("parallel bert", parallel, false), ("parallel ln_after bert", parallelNorm, false),
            ("compacter bert", compacter, false), ("compacter shared W bert", sharedW, false),
            ("compacter++ t5", .compacterPlusPlus(reductionFactor: 2, phmDim: 2), true), ("cross t5", cross, true),
            ("parallel t5", parallel, true),
        ]
        for (name, config, isT5) in cases {
            var rng = Xoshiro256(seed: 5)
            let forward: () throws -> Variable
            let model: Module
            if isT5 {
                // gated GELU: a smooth base, so that finite differences cross no ReLU kink
                let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(gated: true), seed: 12)
                model = t5
                forward = { try t5.forward(inputIDs: self.ids, attentionMask: self.mask, decoderInputIDs: [[0, 3, 4], [0, 5, 6]], Context(mode: .eval)) }
            } else {
                let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
                model = bert
                forward = { try bert.forward(inputIDs: self.ids, attentionMask: self.mask, tokenTypeIDs: self.types, Context(mode: .eval)).sequence }
            }
            let peft = try PeftModel(wrapping: model, config: config, using: &rng)
            // Non-trivial values everywhere (mam_adapter starts the up projection at zero, LayerNorms at identity).
            // (PHM rules start near zero; a larger draw gives their blocks gradients well above float32 noise.)
            let spread: Float = config.phmLayer ? 1 : 0.3
            for (i, (_, p)) in peft.adapterParameters().enumerated() {
                p.value = try p.value + randomTensor(p.value.shape, seed: UInt64(40 + i), low: -spread, high: spread)
            }
            XCTAssertGreaterThan(peft.adapterParameters().count, 0, name)
            try paramGradCheck(peft.adapterParameters().map(\.parameter), step: 1e-2, rtol: 2e-2, forward)
        }
    }

    func testSavesLoadsAndRefusesToMerge() throws {
        var rng = Xoshiro256(seed: 8)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 4)
        let base = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        let peft = try PeftModel(wrapping: bert, config: BnConfig.compacter(reductionFactor: 2, phmDim: 2), using: &rng)
        let keys = peft.adapterParameters().map(\.key)
        XCTAssertTrue(keys.contains("base_model.model.encoder.layer.0.attention.output.adapters.adapter_down.0.W_left"), "\(keys)")
        XCTAssertTrue(keys.contains("base_model.model.encoder.layer.1.output.adapters.adapter_up.b"))
        XCTAssertTrue(keys.contains("base_model.model.shared_parameters.phm_rule"), "the rule is saved once")
        XCTAssertEqual(keys.filter { $0.hasSuffix("phm_rule") }.count, 1)
        for (_, p) in peft.adapterParameters() { p.value = try p.value + randomTensor(p.value.shape, seed: 3, low: -0.3, high: 0.3) }
        XCTAssertTrue(peft.adapterParameters().allSatisfy { $0.parameter.requiresGrad })
        XCTAssertTrue(bert.namedParameters().filter { !$0.name.contains(".adapters.") }.allSatisfy { !$0.parameter.requiresGrad })
        let y = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        XCTAssertGreaterThan(try (y - base).abs().max().scalars[0], 1e-3)
        let off = Context.inference()
        off.adaptersEnabled = false
        assertClose(try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, off).sequence.value, base, rtol: 0, atol: 0)
        XCTAssertTrue(message { try peft.merge() }.contains("cannot be merged"))
        XCTAssertTrue(peft.parameterSummary().hasPrefix("trainable params: "))

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bn-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try peft.save(to: url)
        let fresh = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 4)
        let loaded = try PeftModel.load(from: url, into: fresh)
        XCTAssertEqual(loaded.config.peftType, "POLYPEFT_BOTTLENECK")
        assertClose(try fresh.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value,
                    y, rtol: 0, atol: 0)
    }

    /// The adapters library numbers a decoder's layers after its encoder's: on a 2 + 2 layer T5, `leave_out: [0, 2]`
    /// leaves out encoder block 0 and decoder block 0.
    func testLayerNumberingAndLeaveOut() throws {
        XCTAssertEqual(try AdapterHubLayers.indices(["encoder.layer.0.output", "bert.encoder.layer.3.attention.output"]), [0, 3])
        XCTAssertEqual(try AdapterHubLayers.indices(["encoder.block.0.layer.1", "encoder.block.1.layer.0",
                                                           "decoder.block.0.layer.2", "decoder.block.1.layer.1"]), [0, 1, 2, 3])
        var rng = Xoshiro256(seed: 2)
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 1)
        var c = BnConfig.doubleSeqBn(reductionFactor: 2)
        c.crossAdapter = true
        c.leaveOut = [0, 2]
        let peft = try PeftModel(wrapping: t5, config: c, using: &rng)
        XCTAssertEqual(peft.adapters.map(\.path), [
            "encoder.block.1.layer.0.adapters", "encoder.block.1.layer.1.adapters",
            "decoder.block.1.layer.0.adapters", "decoder.block.1.layer.1.adapters", "decoder.block.1.layer.2.adapters",
        ])
        var perLayer = BnConfig.seqBn()
        perLayer.reductionFactor = .perLayer(["1": 4, "default": 2])
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        let p2 = try PeftModel(wrapping: bert, config: perLayer, using: &rng)
        let downs = p2.adapterParameters().filter { $0.key.hasSuffix("adapter_down.0.weight") }.map(\.parameter.value.shape)
        XCTAssertEqual(downs, [[4, 8], [2, 8]])
    }

    /// The PHM weight `sum_i kron(rule_i, W_i)` against a naive loop, on odd sizes, factorised and not.
    func testPHMWeightIsTheKroneckerSum() throws {
        for (factorized, rank) in [(true, 2), (false, 1)] {
            var c = BnConfig.compacter(reductionFactor: 1, phmDim: 3)
            c.sharedPhmRule = false
            c.factorizedPhmRule = factorized
            c.factorizedPhmW = factorized
            c.phmRank = rank
            var rng = Xoshiro256(seed: 9)
            let layer = try PHMLayer(inFeatures: 6, outFeatures: 9, config: c, sharedRule: nil, position: .down, name: "phm", using: &rng)
            for (_, p) in layer.namedParameters() { p.value = randomTensor(p.value.shape, seed: UInt64(p.count)) }
            let ctx = Context(mode: .eval)
            let h = try layer.weight(ctx).value
            let rule = try layer.rule.matrix(ctx).value, w: Tensor
            w = factorized ? try layer.wLeft!.value.matmul(layer.wRight!.value) : layer.wFull!.value
            var naive = [Float](repeating: 0, count: 54)
            for i in 0..<3 { for p in 0..<3 { for q in 0..<3 { for r in 0..<2 { for s in 0..<3 {
                naive[(p * 2 + r) * 9 + q * 3 + s] += rule[i, p, q] * w[i, r, s]
            } } } } }
            assertClose(h, Tensor(naive, shape: [6, 9]), rtol: 1e-5, atol: 1e-6, "factorized \(factorized)")
            let x = randomTensor([2, 3, 6], seed: 4)
            let y = try layer.forward(Variable(x), ctx).value
            assertClose(y, try x.matmul(h) + layer.bias!.value, rtol: 1e-5, atol: 1e-6)
            try paramGradCheck(layer.namedParameters().map(\.parameter)) { try layer.forward(Variable(x), Context(mode: .eval)) }
        }
    }

    /// Training moves the loss down and dropout acts in training only.
    func testTrainsOnBertWithDropoutInTrainingOnly() throws {
        var rng = Xoshiro256(seed: 3)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 6)
        var c = BnConfig.parBn(reductionFactor: 2)
        c.dropout = 0.5
        let peft = try PeftModel(wrapping: bert, config: c, using: &rng)
        for (_, p) in peft.adapterParameters() { p.value = try p.value + randomTensor(p.value.shape, seed: 8, low: -0.2, high: 0.2) }
        let eval1 = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        let eval2 = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        XCTAssertEqual(eval1, eval2)
        let train = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .train, rng: Xoshiro256(seed: 1))).sequence.value
        XCTAssertGreaterThan(try (train - eval1).abs().max().scalars[0], 1e-4)
        let opt = Adam.adamW([ParameterGroup(parameters: peft.adapterParameters().map { ($0.key, $0.parameter) }, learningRate: 1e-2)])
        let target = Variable(randomTensor([2, 5, 8], seed: 12))
        func loss() throws -> Variable {
            try (try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .eval)).sequence - target)
                .squared().mean()
        }
        let first = try loss().value.scalars[0]
        for _ in 0..<20 {
            peft.zeroGrad()
            try loss().backward()
            opt.step()
        }
        XCTAssertLessThan(try loss().value.scalars[0], first * 0.9)
    }
}
