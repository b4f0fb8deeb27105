import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// The adapters library's LoRA and (IA)^3 (`AdaptersLoRAConfig`): presets and JSON, placement on BERT and T5, the
/// forward against its formula, gradients by finite differences, merging, and config errors. Exactness against the
/// library is in `AdaptersLoRAGoldenTests`.
final class AdaptersLoRATests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testPresetsAndJSON() throws {
        let lora = AdaptersLoRAConfig.lora()
        XCTAssertEqual(lora.locations, [.selfAttention])
        XCTAssertEqual(lora.attnMatrices, ["q", "v"])
        XCTAssertEqual(lora.scaling, 1)
        let ia3 = AdaptersLoRAConfig.ia3()
        XCTAssertEqual(ia3.locations, [.selfAttention, .intermediate])
        XCTAssertEqual(ia3.compositionMode, .scale)
        XCTAssertEqual(ia3.attnMatrices, ["k", "v"])
        var c = AdaptersLoRAConfig.lora(r: 4, alpha: 2)
        c.useGating = true
        c.leaveOut = [1]
        let json = c.json
        XCTAssertEqual(json["peft_type"], "POLYPEFT_ADAPTERS_LORA")
        XCTAssertEqual(json["alpha"], 2)
        XCTAssertEqual(json["use_dora"], false)
        XCTAssertNil(json["target_modules"])
        XCTAssertEqual(try AdaptersLoRAConfig(json: json).json, json)
        let hub = c.adapterHubConfig
        XCTAssertEqual(hub["architecture"], "lora")
        XCTAssertNil(hub["peft_type"])
        XCTAssertEqual((try AdapterHubMethods.config(adapterHubConfig: hub, context: "x") as? AdaptersLoRAConfig)?.json, json)
    }

    func testPlacementOnBertAndT5() throws {
        var rng = Xoshiro256(seed: 1)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
        var all = AdaptersLoRAConfig.lora(r: 2)
        all.attnMatrices = ["q", "k", "v"]
        all.intermediateLora = true
        all.outputLora = true
        all.leaveOut = [0]
        let peft = try PeftModel(wrapping: bert, config: all, using: &rng)
        XCTAssertEqual(peft.adapters.map(\.path), ["encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.key",
                                                   "encoder.layer.1.attention.self.value", "encoder.layer.1.intermediate.dense",
                                                   "encoder.layer.1.output.dense"])
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(gated: true), seed: 2)
        var ffn = AdaptersLoRAConfig.ia3()
        ffn.selfattnLora = false
        ffn.outputLora = true
        ffn.leaveOut = [2]                                   // decoder block 0 (encoder first: 2 + 2 layers)
        let onT5 = try PeftModel(wrapping: t5, config: ffn, using: &rng)
        XCTAssertEqual(onT5.adapters.map(\.path), [
            "encoder.block.0.layer.1.DenseReluDense.wi_1", "encoder.block.0.layer.1.DenseReluDense.wo",
            "encoder.block.1.layer.1.DenseReluDense.wi_1", "encoder.block.1.layer.1.DenseReluDense.wo",
            "decoder.block.1.layer.2.DenseReluDense.wi_1", "decoder.block.1.layer.2.DenseReluDense.wo"])
        let t5b = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 2)
        let attention = try PeftModel(wrapping: t5b, config: AdaptersLoRAConfig.lora(r: 2), using: &rng)
        XCTAssertEqual(attention.adapters.count, 2 * (2 + 2 * 2), "q and v of 2 encoder self-attentions and 2 decoder self- and cross-attentions")
        XCTAssertTrue(attention.adapters.contains { $0.path == "decoder.block.0.layer.1.EncDecAttention.q" })
        let mlp = try MLP([.linear(name: "fc", inFeatures: 4, outFeatures: 4, bias: true)], using: &rng)
        XCTAssertTrue(message { _ = try PeftModel(wrapping: mlp, config: AdaptersLoRAConfig.lora(), using: &rng) }.contains("BERT and T5"))
    }

    /// One wrapped layer against its formula: add and scale, gated and not; with a gate the recorder gathers one
    /// column per module.
    func testForwardMatchesTheFormula() throws {
        for (mode, gated) in [(AdaptersLoRAConfig.Composition.add, false), (.add, true), (.scale, false), (.scale, true)] {
            var rng = Xoshiro256(seed: 7)
            let linear = Linear(5, 3, using: &rng)
            var c = mode == .add ? AdaptersLoRAConfig.lora(r: 2, alpha: 3) : AdaptersLoRAConfig.ia3()
            c.useGating = gated
            c.initWeights = .bert
            let layer = try AdaptersLoRALinear(wrapping: linear, path: "fc", config: c, layerIndex: 0, location: .output, using: &rng)
            let x = randomTensor([2, 4, 5], seed: 3, low: -1, high: 1)
            let recorder = Recorder()
            let y = try layer.forward(Variable(x), Context(mode: .eval, recordsGradients: false, recorder: recorder)).value
            let base = try linear.forward(Variable(x), Context.inference()).value
            var expected = [Float](repeating: 0, count: 2 * 4 * 3)
            let w = linear.weight.value.scalars, b = linear.bias!.value.scalars, xs = x.scalars
            let bScal = layer.loraB.value.scalars, aScal = layer.loraA?.value.scalars ?? []
            var gates = [Float](repeating: 0, count: 2)
            if gated {
                let gw = layer.gate!.linear!.weight.value.scalars, gb = layer.gate!.linear!.bias!.value.scalars[0]
                for s in 0..<2 {
                    var acc: Float = 0
                    for t in 0..<4 {
                        var z = gb
                        for i in 0..<5 { z += xs[(s * 4 + t) * 5 + i] * gw[i] }
                        acc += 1 / (1 + exp(-z))
                    }
                    gates[s] = acc / 4
                }
                XCTAssertEqual(recorder["gate.0.output_lora"]?.shape, [2])
                assertClose(recorder["gate.0.output_lora"]!, Tensor(gates, shape: [2]), rtol: 1e-5, atol: 1e-6, "recorded gate")
            }
            for s in 0..<2 {
                let factor = gated ? gates[s] : Float(c.scaling)
                for t in 0..<4 {
                    let row = s * 4 + t
                    for o in 0..<3 {
                        var yb = b[o]
                        for i in 0..<5 { yb += xs[row * 5 + i] * w[o * 5 + i] }
                        if mode == .scale {
                            expected[row * 3 + o] = yb * bScal[o] * factor
                        } else {
                            var d: Float = 0
                            for k in 0..<2 {
                                var ax: Float = 0
                                for i in 0..<5 { ax += xs[row * 5 + i] * aScal[k * 5 + i] }
                                d += ax * bScal[o * 2 + k]
                            }
                            expected[row * 3 + o] = yb + d * factor
                        }
                    }
                }
            }
            assertClose(y, Tensor(expected, shape: [2, 4, 3]), rtol: 1e-5, atol: 1e-5, "\(mode) gated \(gated)")
            XCTAssertNotEqual(y, base)
            // A second module at the same layer and location adds a column.
            _ = try layer.forward(Variable(x), Context(mode: .eval, recordsGradients: false, recorder: recorder))
            XCTAssertEqual(recorder["gate.0.output_lora"]?.shape, gated ? [2, 2] : nil)
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        for (mode, gated) in [(AdaptersLoRAConfig.Composition.add, true), (.add, false), (.scale, true)] {
            var rng = Xoshiro256(seed: 11)
            let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
            var c = mode == .add ? AdaptersLoRAConfig.lora(r: 2, alpha: 4) : AdaptersLoRAConfig.ia3()
            c.useGating = gated
            c.outputLora = true
            let peft = try PeftModel(wrapping: bert, config: c, using: &rng)
            for (i, (_, p)) in peft.adapterParameters().enumerated() {
                p.value = try p.value + randomTensor(p.value.shape, seed: UInt64(60 + i), low: -0.3, high: 0.3)
            }
            try paramGradCheck(peft.adapterParameters().map(\.parameter), step: 1e-2, rtol: 2e-2) {
                try bert.forward(inputIDs: self.ids, attentionMask: self.mask, tokenTypeIDs: self.types, Context(mode: .eval)).sequence
            }
        }
    }

    /// The gating scores of a forward, as the adapters library structures them: by layer, then location.
    func testGatingScoresFromARecorder() throws {
        let r = Recorder()
        r.record("gate.0.output_adapter", Tensor([0.25, 0.75], shape: [2]))
        r.append("gate.1.selfattn_lora", column: Tensor([0.1, 0.2], shape: [2]))
        r.append("gate.1.selfattn_lora", column: Tensor([0.3, 0.6], shape: [2]))
        r.record("slot.x.output", Tensor.zeros([1]))
        let g = GatingScores(r)
        XCTAssertEqual(g.places.map { "\($0.layer) \($0.location)" }, ["0 output_adapter", "1 selfattn_lora"])
        XCTAssertEqual(g.scores[1]?["selfattn_lora"], Tensor([0.1, 0.3, 0.2, 0.6], shape: [2, 2]))
        XCTAssertEqual(g.perSample(layer: 1, location: "selfattn_lora"), [0.2, 0.4])
        XCTAssertEqual(g.perSample(layer: 0, location: "output_adapter"), [0.25, 0.75])
        XCTAssertNil(g.perSample(layer: 2, location: "output_adapter"))
    }

    func testMergeUnmergeAndErrors() throws {
        for preset in [AdaptersLoRAConfig.lora(r: 2, alpha: 4), AdaptersLoRAConfig.ia3()] {
            var rng = Xoshiro256(seed: 4)
            let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
            var c = preset
            c.initWeights = .bert
            let peft = try PeftModel(wrapping: bert, config: c, using: &rng)
            let run = { try bert.forward(inputIDs: self.ids, attentionMask: self.mask, tokenTypeIDs: self.types, Context.inference()).sequence.value }
            let before = try run()
            try peft.merge()
            assertClose(try run(), before, rtol: 1e-5, atol: 1e-5, "\(c.compositionMode) merged")
            try peft.unmerge()
            assertClose(try run(), before, rtol: 1e-5, atol: 1e-5, "\(c.compositionMode) unmerged")
        }
        var rng = Xoshiro256(seed: 4)
        var gated = AdaptersLoRAConfig.lora()
        gated.useGating = true
        let peft = try PeftModel(wrapping: try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3), config: gated, using: &rng)
        XCTAssertTrue(message { try peft.merge() }.contains("a gated LoRA cannot be merged"))

        func error(_ edit: (inout [String: JSONValue]) -> Void) -> String {
            var o = AdaptersLoRAConfig.lora().json.objectValue!
            edit(&o)
            return message { _ = try AdaptersLoRAConfig(json: .object(o), context: "c.json") }
        }
        XCTAssertTrue(error { $0["r"] = 0 }.contains("c.json: r must be in 1...4096"))
        XCTAssertTrue(error { $0["attn_matrices"] = ["q", "o"] }.contains("attn_matrices may hold"))
        XCTAssertTrue(error { $0["composition_mode"] = "scale" }.contains("composition_mode \"scale\" needs r = 1"))
        XCTAssertTrue(error { $0["composition_mode"] = "mul" }.contains("composition_mode"))
        XCTAssertTrue(error { $0["use_dora"] = true }.contains("use_dora = true is not supported"))
        XCTAssertTrue(error { $0["vera_d"] = 0.1 }.contains("vera_d"))
        XCTAssertTrue(error { $0["selfattn_lora"] = false }.contains("no location enabled"))
        XCTAssertTrue(error { $0["dropout"] = 1.5 }.contains("dropout must be in [0, 1)"))
        XCTAssertTrue(error { $0["init_weights"] = "vera" }.contains("init_weights"))
    }
}
