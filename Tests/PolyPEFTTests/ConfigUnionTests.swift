import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// `ConfigUnion`: several methods on one model. Parts compose as if each were alone (zeroing one part's update leaves
/// exactly the other's), gradients reach every part, PEFT-style folders round-trip, and every conflict between parts
/// is an error naming both. Exactness of bottleneck unions against the adapters library is in
/// `BottleneckGoldenTests` (`union_*` cases) and their folders in `AdapterHubFolderTests`.
final class ConfigUnionTests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func bert(seed: UInt64 = 3) throws -> BertModel {
        try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: seed)
    }

    func output(_ m: BertModel) throws -> Tensor {
        try m.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
    }

    func maxAbsDiff(_ a: Tensor, _ b: Tensor) throws -> Float {
        zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max() ?? 0
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    var loraAndBottleneck: ConfigUnion {
        var lora = LoraConfig(r: 2, loraAlpha: 4, targetModules: .names(["query", "value"]))
        lora.initLoraWeights = .random
        var bn = BnConfig.seqBn(reductionFactor: 2)
        bn.useGating = true
        return ConfigUnion([lora, bn])
    }

    func testJSONRoundTripAndSummary() throws {
        let u = loraAndBottleneck
        let json = u.json
        XCTAssertEqual(json["peft_type"], "POLYPEFT_UNION")
        XCTAssertEqual(json["configs"]?.arrayValue?.map { $0["peft_type"] }, ["LORA", "POLYPEFT_BOTTLENECK"])
        XCTAssertNil(json["target_modules"])
        let back = try XCTUnwrap(try PeftMethods.config(json: json) as? ConfigUnion)
        XCTAssertEqual(back.json, json)
        XCTAssertEqual(back.summary, "Union  " + u.configs.map(\.summary).joined(separator: "  +  "))
        // In the adapters library's format a union is {"architecture": "union", "configs": [...]}.
        var two = ConfigUnion([BnConfig.seqBn(reductionFactor: 4), {
            var c = BnConfig.doubleSeqBn(reductionFactor: 2); c.outputAdapter = false; return c }()])
        two.common.taskType = nil
        let hub = two.adapterHubConfig
        XCTAssertEqual(hub["architecture"], "union")
        XCTAssertNil(hub["configs"]?.arrayValue?[0]["peft_type"])
        let fromHub = try XCTUnwrap(try AdapterHubMethods.config(adapterHubConfig: hub, context: "x") as? ConfigUnion)
        XCTAssertEqual(fromHub.json, two.json)
    }

    /// With LoRA's update zeroed the union computes what the bottleneck part alone computes with the same tensors,
    /// and with the bottleneck's up-projection zeroed what the LoRA part alone computes; gradients reach both parts;
    /// a PEFT-style folder reloads to the same output.
    func testPartsComposeAndTrainAndRoundTrip() throws {
        var rng = Xoshiro256(seed: 5)
        let model = try bert()
        let union = try PeftModel(wrapping: model, config: loraAndBottleneck, using: &rng)
        let tensors = try union.adapterTensors()
        XCTAssertTrue(tensors.keys.contains { $0.hasSuffix("query.lora_B.weight") })
        XCTAssertTrue(tensors.keys.contains { $0.contains(".adapters.adapter_up.") })
        let both = try output(model)

        func alone(_ config: any PeftConfig, zeroing prefix: String) throws -> (Tensor, Tensor) {
            var g = Xoshiro256(seed: 9)
            let single = try bert()
            let peft = try PeftModel(wrapping: single, config: config, using: &g)
            let own = Set(try peft.adapterTensors().keys)
            try peft.loadAdapterTensors(tensors.filter { own.contains($0.key) })
            var zeroed = tensors
            for (k, t) in zeroed where k.contains(prefix) { zeroed[k] = Tensor.zeros(t.shape) }
            try union.loadAdapterTensors(zeroed)
            defer { try? union.loadAdapterTensors(tensors) }
            return (try output(model), try output(single))
        }
        let (onlyBn, bnAlone) = try alone(loraAndBottleneck.configs[1], zeroing: ".lora_B.")
        assertClose(onlyBn, bnAlone, rtol: 0, atol: 1e-6, "union with LoRA zeroed = the bottleneck alone")
        let (onlyLora, loraAlone) = try alone(loraAndBottleneck.configs[0], zeroing: ".adapter_up.")
        assertClose(onlyLora, loraAlone, rtol: 0, atol: 1e-6, "union with the bottleneck zeroed = LoRA alone")
        XCTAssertGreaterThan(try maxAbsDiff(both, onlyBn), 1e-4, "LoRA changes the union's output")
        XCTAssertGreaterThan(try maxAbsDiff(both, onlyLora), 1e-4, "the bottleneck changes the union's output")

        union.zeroGrad()
        let loss = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .train)).sequence.squared().sum()
        try loss.backward()
        for (key, p) in union.adapterParameters() where key.contains("lora_B") || key.contains("adapter_up.weight") || key.contains("gate.weight") {
            XCTAssertGreaterThan(p.grad?.scalars.map { Swift.abs($0) }.max() ?? 0, 0, "\(key) gets a gradient")
        }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("union-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try union.save(to: dir)
        let loaded = try bert()
        let again = try PeftModel.load(from: dir, into: loaded)
        XCTAssertTrue(again.config is ConfigUnion)
        XCTAssertEqual(try output(loaded), both)
        // Not mergeable as a whole: the bottleneck part is not linear.
        XCTAssertThrowsError(try union.merge())
        assertClose(try output(model), both, rtol: 0, atol: 1e-5, "a failed merge leaves nothing merged (LoRA merged and taken out again)")
    }

    /// A prompt-learning part and a layer tuner on T5: both attach and the folder round-trips.
    func testPromptTuningWithLoRAOnT5() throws {
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 1)
        var rng = Xoshiro256(seed: 2)
        var lora = LoraConfig(r: 2, loraAlpha: 2, targetModules: .names(["q", "v"]))
        lora.initLoraWeights = .random
        let peft = try PeftModel(wrapping: t5, config: ConfigUnion([PromptTuningConfig(numVirtualTokens: 2), lora]), using: &rng)
        let src = [[3, 4, 5, 1], [6, 7, 1, 0]], srcMask = [[1, 1, 1, 1], [1, 1, 1, 0]], dec = [[0, 3, 4], [0, 6, 7]]
        let y = try t5.forward(inputIDs: src, attentionMask: srcMask, decoderInputIDs: dec, Context.inference()).value
        XCTAssertTrue(try peft.adapterTensors().keys.contains("prompt_embeddings"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("union-t5-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let fresh = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 1)
        _ = try PeftModel.load(from: dir, into: fresh)
        XCTAssertEqual(try fresh.forward(inputIDs: src, attentionMask: srcMask, decoderInputIDs: dec, Context.inference()).value, y)
    }

    func testConflictsAreErrorsNamingBothParts() throws {
        func attach(_ parts: [any PeftConfig]) -> String {
            message {
                var rng = Xoshiro256(seed: 1)
                _ = try PeftModel(wrapping: try bert(), config: ConfigUnion(parts), using: &rng)
            }
        }
        let lora = LoraConfig(r: 2, loraAlpha: 2, targetModules: .names(["query", "value"]))
        XCTAssertTrue(attach([]).contains("configs is empty"))
        XCTAssertTrue(attach([lora, IA3Config(targetModules: .names(["value", "key"]), feedforwardModules: .names([]))])
            .contains("configs[0] (LORA) and configs[1] (IA3) both wrap 'encoder.layer.0.attention.self.value'"))
        // Disjoint targets are fine (the adapters library refuses any two parts of one architecture; we need not).
        XCTAssertEqual(attach([lora, IA3Config(targetModules: .names(["key"]), feedforwardModules: .names([]))]), "")
        XCTAssertTrue(attach([BnConfig.seqBn(), BnConfig.doubleSeqBn()]).contains("must differ in mh_adapter and in output_adapter"))
        var left0 = BnConfig.seqBn(reductionFactor: 2); left0.leaveOut = [0]
        var left1 = BnConfig.doubleSeqBn(reductionFactor: 2); left1.leaveOut = [0]
        XCTAssertTrue(attach([left0, left1]).contains("configs[0] (POLYPEFT_BOTTLENECK) and configs[1] (POLYPEFT_BOTTLENECK) both fill "
            + "the residual slot 'encoder.layer.1.output.adapters'"), attach([left0, left1]))
        var attentionOnly = BnConfig.doubleSeqBn(reductionFactor: 2); attentionOnly.outputAdapter = false; attentionOnly.leaveOut = [1]
        XCTAssertEqual(attach([left0, attentionOnly]), "", "leave_out makes the pair a per-layer question")
        var c1 = BnConfig.compacterPlusPlus(reductionFactor: 2), c2 = BnConfig.compacter(reductionFactor: 2)
        c2.outputAdapter = false
        XCTAssertTrue(attach([c1, c2]).contains("both Compacter parts with a shared phm rule"))
        c1.sharedPhmRule = false
        XCTAssertEqual(attach([c1, c2]), "")
        XCTAssertTrue(attach([PromptTuningConfig(numVirtualTokens: 1), PrefixTuningConfig(numVirtualTokens: 1)])
            .contains("both prompt-learning methods (PROMPT_TUNING, PREFIX_TUNING)"))
        XCTAssertTrue(attach([ConfigUnion([lora])]).contains("a union cannot contain a union"))
        var headed = lora; headed.modulesToSave = ["pooler"]
        XCTAssertTrue(attach([headed]).contains("task_type and modules_to_save belong to the union"))
        // A part that fails after another attached says the model holds the earlier parts.
        let bad = LoraConfig(r: 2, loraAlpha: 2, targetModules: .names(["nothing_here"]))
        let late = attach([BnConfig.seqBn(reductionFactor: 2), bad])
        XCTAssertTrue(late.contains("matched no module") || late.contains("nothing_here"), late)
        let json: JSONValue = ["peft_type": "POLYPEFT_UNION", "configs": [["peft_type": "NOPE"]]]
        XCTAssertTrue(message { _ = try PeftMethods.config(json: json, context: "u.json") }.contains("u.json configs[0]: peft_type \"NOPE\""))
        XCTAssertTrue(message { _ = try PeftMethods.config(json: ["peft_type": "POLYPEFT_UNION", "configs": 3], context: "u.json") }
            .contains("configs"))
    }
}
