import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// The adapters library's prefix tuning (`AdaptersPrefixConfig`) and PolyPEFT's task-routed gates (`MethodGate`,
/// `ConfigUnion.taskRouted`): placement, JSON, gradients by finite differences, errors. Exactness against the library
/// is in `AdaptersPrefixGoldenTests`.
final class AdaptersPrefixTests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func bert(_ config: any PeftConfig, seed: UInt64 = 5) throws -> (BertModel, PeftModel) {
        var rng = Xoshiro256(seed: seed)
        let model = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
        let peft = try PeftModel(wrapping: model, config: config, using: &rng)
        for (i, (_, p)) in peft.adapterParameters().enumerated() {
            p.value = try p.value + randomTensor(p.value.shape, seed: UInt64(80 + i), low: -0.3, high: 0.3)
        }
        return (model, peft)
    }

    func testPlacementJSONAndSavedNames() throws {
        var c = AdaptersPrefixConfig(prefixLength: 2, bottleneckSize: 4)
        c.useGating = true
        c.sharedGating = false
        c.leaveOut = [2]
        let json = c.json
        XCTAssertEqual(json["peft_type"], "POLYPEFT_ADAPTERS_PREFIX")
        XCTAssertNil(json["polypeft_task_gates"])
        XCTAssertEqual(try AdaptersPrefixConfig(json: json).json, json)
        XCTAssertEqual(c.adapterHubConfig["architecture"], "prefix_tuning")
        // T5: encoder self-attention, decoder self- and cross-attention; decoder layer 0 is layer 2 (left out).
        var rng = Xoshiro256(seed: 1)
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 2)
        let peft = try PeftModel(wrapping: t5, config: c, using: &rng)
        let names = peft.adapterParameters().map(\.key)
        XCTAssertTrue(names.contains("base_model.model.prefix_tuning.encoder_prefix.wte.weight"), "\(names)")
        XCTAssertTrue(names.contains("base_model.model.prefix_tuning.self_prefix.control_trans.2.weight"))
        XCTAssertTrue(names.contains("base_model.model.decoder.block.1.layer.1.EncDecAttention.prefix_tuning.gate.weight"))
        XCTAssertFalse(names.contains { $0.contains("decoder.block.0.") }, "layer 2 is left out")
        // Two outputs per gate; the self_prefix generator makes one layer's keys and values (leave_out [2]).
        let w = peft.adapterParameters().first { $0.key.hasSuffix("self_prefix.control_trans.2.weight") }!.parameter
        XCTAssertEqual(w.value.shape, [1 * 2 * 2 * 3, 4])
        XCTAssertEqual(peft.adapterParameters().first { $0.key.hasSuffix("block.1.layer.0.SelfAttention.prefix_tuning.gate.weight") }?
            .parameter.value.shape, [2, 8])
        // A BERT classifier's pool sits on its encoder model, as the library's base model holds it.
        let classifier = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 1)
        let p2 = try PeftModel(wrapping: classifier, config: AdaptersPrefixConfig(prefixLength: 2, bottleneckSize: 4), using: &rng)
        XCTAssertTrue(p2.adapterParameters().contains { $0.key == "base_model.model.bert.prefix_tuning.self_prefix.wte.weight" })
        XCTAssertEqual(try p2.adapterHubTensors(name: "a").keys.filter { $0.contains("wte") }, ["bert.prefix_tuning.prefix_tunings.a.self_prefix.wte.weight"])
    }

    func testErrors() throws {
        var c = AdaptersPrefixConfig(prefixLength: 0)
        XCTAssertTrue(message { try c.validate() }.contains("prefix_length must be in 1...4096, got 0"))
        c = AdaptersPrefixConfig(prefixLength: 2)
        c.nonLinearity = "wobble"
        XCTAssertTrue(message { try c.validate() }.contains("non_linearity 'wobble' is not supported"))
        c = AdaptersPrefixConfig(prefixLength: 2)
        c.taskGates = 3
        XCTAssertTrue(message { try c.validate() }.contains("polypeft_task_gates needs use_gating"))
        c.leaveOut = [0, 1]
        c.useGating = true
        let model = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
        var rng = Xoshiro256(seed: 1)
        XCTAssertTrue(message { _ = try PeftModel(wrapping: model, config: c, using: &rng) }.contains("selects no attention layer"))
        let linear = Module()
        linear.addChild("fc1", Linear(4, 4, using: &rng))
        XCTAssertTrue(message { _ = try PeftModel(wrapping: linear, config: AdaptersPrefixConfig(prefixLength: 2), using: &rng) }
            .contains("needs attention layers with a prefix slot"))
        // The library's folder cannot carry PolyPEFT's keys, either way.
        var hub = AdaptersPrefixConfig(prefixLength: 2).adapterHubConfig.objectValue!
        hub["polypeft_task_gates"] = 2
        XCTAssertTrue(message { _ = try AdapterHubMethods.config(adapterHubConfig: .object(hub), context: "f") }
            .contains("'polypeft_task_gates' is PolyPEFT's key"))
    }

    func testGradientsMatchFiniteDifferences() throws {
        var flat = AdaptersPrefixConfig(prefixLength: 2)
        flat.flat = true
        var gated = AdaptersPrefixConfig(prefixLength: 3, bottleneckSize: 4)
        gated.useGating = true
        gated.sharedGating = false
        for config in [flat, gated] {
            let (model, peft) = try bert(config)
            try paramGradCheck(peft.adapterParameters().map(\.parameter), step: 1e-2, rtol: 2e-2) {
                try model.forward(inputIDs: self.ids, attentionMask: self.mask, tokenTypeIDs: self.types, Context(mode: .eval)).sequence
            }
        }
    }

    /// A task-routed union: every gate reads `sigmoid(task_logits[task])` (recorded as gating scores), samples of
    /// one task share gates, the tables learn at the router's rate, gradients agree with finite differences, the
    /// PEFT folder round-trips, and the adapters library's format is refused.
    func testTaskRoutedUnion() throws {
        let union = try ConfigUnion.taskRouted([AdaptersPrefixConfig(prefixLength: 2, bottleneckSize: 4), BnConfig.seqBn(reductionFactor: 4),
                                                AdaptersLoRAConfig.lora(r: 2, alpha: 2)], tasks: 3)
        XCTAssertEqual(union.taskGates, 3)
        XCTAssertTrue(message { _ = try ConfigUnion.taskRouted([LoraConfig(r: 2, targetModules: .names(["query"]))], tasks: 2) }
            .contains("configs[0] (LORA) has no gate to route by task"))
        let (model, peft) = try bert(union)
        let tables = peft.trainableParameters().entries.filter { $0.name.hasSuffix("gate.task_logits") }
        XCTAssertEqual(tables.count, 2 + 2 + 2 * 2, "a prefix gate per layer, a bottleneck per layer, LoRA on query and value")
        XCTAssertTrue(tables.allSatisfy { $0.role == .router && $0.parameter.value.shape[0] == 3 })
        let tasks = [2, 0]
        let recorder = Recorder()
        let y = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types,
                                  Context(mode: .eval, taskIDs: tasks, recordsGradients: false, recorder: recorder)).sequence.value
        let prefixTable = peft.adapterParameters().first { $0.key.hasSuffix("layer.1.attention.self.prefix_tuning.gate.task_logits") }!.parameter.value
        let expected = tasks.map { 1 / (1 + Foundation.exp(-prefixTable[$0, 0])) }
        assertClose(recorder["gate.1.self_prefix"]!, Tensor(expected, shape: [2]), rtol: 1e-6, atol: 1e-6, "prefix gate")
        XCTAssertEqual(recorder["gate.0.selfattn_lora"]?.shape, [2, 2])
        XCTAssertNotNil(recorder["gate.1.output_adapter"])
        let swapped = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .eval, taskIDs: [1, 0])).sequence.value
        XCTAssertNotEqual(swapped, y)
        XCTAssertTrue(message { _ = try model.forward(inputIDs: self.ids, attentionMask: self.mask, Context.inference()) }
            .contains("a task-routed gate needs task ids"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: self.ids, attentionMask: self.mask, Context(mode: .eval, taskIDs: [0, 3])) }
            .contains("task id 3 is out of range (the gate has 3 tasks)"))
        try paramGradCheck(tables.map(\.parameter), step: 1e-2, rtol: 2e-2) {
            try model.forward(inputIDs: self.ids, attentionMask: self.mask, tokenTypeIDs: self.types, Context(mode: .eval, taskIDs: tasks)).sequence
        }
        // Saved as a PEFT folder; not in the adapters library's format.
        XCTAssertTrue(message { _ = try peft.adapterHubFolder(name: "x") }.contains("the adapters library has no 'polypeft_task_gates'"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("task-routed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let fresh = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
        let loaded = try PeftModel.load(from: dir, into: fresh)
        XCTAssertEqual((loaded.config as? ConfigUnion)?.taskGates, 3)
        let again = try fresh.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .eval, taskIDs: tasks)).sequence.value
        XCTAssertEqual(again, y)
    }

    /// Poly in a union with a task-routed bottleneck adapter: both route by the same tasks (a different number is
    /// refused), the router logits and the gate tables train at the router's rate, and the PEFT folder round-trips.
    func testUnionWithPoly() throws {
        let poly = PolyConfig(r: 2, targetModules: .names(["query", "value"]), nTasks: 3, nSkills: 2)
        XCTAssertTrue(message { try ConfigUnion([poly, try ConfigUnion.taskRouted([BnConfig.seqBn(reductionFactor: 4)], tasks: 4).configs[0]]).validate() }
            .contains("configs[0] routes by 3 tasks and configs[1] by 4"))
        let union = ConfigUnion([poly] + (try ConfigUnion.taskRouted([BnConfig.seqBn(reductionFactor: 4)], tasks: 3)).configs)
        let (model, peft) = try bert(union)
        XCTAssertEqual(peft.taskCount, 3)
        let routers = peft.trainableParameters()[.router].map(\.name)
        XCTAssertTrue(routers.contains { $0.hasSuffix("module_logits") } && routers.contains { $0.hasSuffix("gate.task_logits") }, "\(routers)")
        let ctx = Context(mode: .eval, taskIDs: [1, 2])
        let y = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx).sequence
        try y.squared().sum().backward()
        XCTAssertTrue(peft.trainableParameters().entries.allSatisfy { ($0.parameter.grad?.scalars.contains { $0 != 0 }) ?? false },
                      "every parameter gets a gradient")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("poly-union-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let fresh = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 3)
        _ = try PeftModel.load(from: dir, into: fresh)
        XCTAssertEqual(try fresh.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .eval, taskIDs: [1, 2])).sequence.value,
                       y.value)
    }
}
