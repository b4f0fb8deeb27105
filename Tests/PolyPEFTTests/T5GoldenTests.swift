import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Exactness against Hugging Face transformers on the golden case `t5_mhr_k4_s2_r2` (base model only).
final class T5GoldenTests: XCTestCase {
    static var caseDir: URL { IOTestSupport.goldenRoot.appendingPathComponent("t5_mhr_k4_s2_r2") }

    static func loadBase() throws -> T5ForConditionalGeneration {
        let config = try T5Config(data: try Data(contentsOf: caseDir.appendingPathComponent("base_config.json")))
        let model = try T5ForConditionalGeneration(config: config, seed: 1)
        let weights = try SafetensorsFile(contentsOf: caseDir.appendingPathComponent("base_model.safetensors")).allTensors()
        try model.loadStateDict(weights)
        return model
    }

    func testBaseLogitsMatchTransformers() throws {
        let model = try Self.loadBase()
        let inputs = try SafetensorsFile(contentsOf: Self.caseDir.appendingPathComponent("inputs.safetensors"))
        let outputs = try SafetensorsFile(contentsOf: Self.caseDir.appendingPathComponent("outputs.safetensors"))
        let ids = try inputs.intRows("input_ids"), mask = try inputs.intRows("attention_mask")
        let dec = try inputs.intRows("decoder_input_ids")
        XCTAssertTrue(mask.joined().contains(0), "the golden inputs exercise padding")
        let logits = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, .inference())
        let expected = try outputs.tensor("base_output")
        assertClose(logits.value, expected, rtol: 1e-5, atol: 1e-5 * (expected.abs().scalars.max() ?? 1))
        // Cached step-by-step decoding gives the same logits.
        let (states, emask) = try model.encode(inputIDs: ids, attentionMask: mask, .inference())
        let cache = T5DecoderCache(layers: model.config.numDecoderLayers)
        for t in 0..<dec[0].count {
            let step = try model.decode(decoderInputIDs: dec.map { [$0[t]] }, encoderStates: states, encoderMask: emask,
                                        cache: cache, .inference())
            assertClose(step.value, try expected.sliced(axis: 1, start: t, end: t + 1).contiguous(), rtol: 1e-5, atol: 1e-5,
                        "cached step \(t)")
        }
    }

    func testModuleNamesAreHuggingFaces() throws {
        let model = try Self.loadBase()
        let names = Set(model.namedParameters().map(\.name))
        let weights = try SafetensorsFile(contentsOf: Self.caseDir.appendingPathComponent("base_model.safetensors"))
        XCTAssertEqual(names, Set(weights.keys))
        let shared = model.module(at: "shared") as! Embedding
        XCTAssertTrue((model.module(at: "lm_head") as! Linear).weight === shared.weight)
        XCTAssertTrue((model.module(at: "decoder.embed_tokens") as! Embedding).weight === shared.weight)
        XCTAssertNotNil(model.module(at: "decoder.block.0.layer.1.EncDecAttention.v") as? Linear)
        XCTAssertEqual(LoraConfig.defaultTargetModules(modelType: "t5"), ["q", "v"])
    }
}

/// End to end with PEFT: Poly layers injected in place of every `q` and `v` (self- and cross-attention) are really
/// called by the T5 forward, with each sample's task id.
final class T5PolyGoldenTests: XCTestCase {
    func testPolyInjectedT5MatchesPEFT() throws {
        let dir = T5GoldenTests.caseDir
        let model = try T5GoldenTests.loadBase()
        var g = Xoshiro256(seed: 1)
        let paths = model.namedModules().map(\.path).filter { $0.hasSuffix(".q") || $0.hasSuffix(".v") }
        XCTAssertEqual(paths.count, 6)
        for p in paths {
            let poly = try PolyLinear(wrapping: model.module(at: p) as! Linear, path: p, r: 2, nTasks: 3, nSkills: 4,
                                      nSplits: 2, initWeights: false, using: &g)
            try model.replace(path: p, with: poly)
        }
        let adapter = try SafetensorsFile(contentsOf: dir.appendingPathComponent("adapter/adapter_model.safetensors"))
        let params = Dictionary(model.namedParameters().map { ($0.name, $0.parameter) }, uniquingKeysWith: { a, _ in a })
        for key in adapter.keys {
            let name = String(key.dropFirst("base_model.model.".count))
            guard let p = params[name] else { return XCTFail("no parameter \(name)") }
            p.value = try adapter.tensor(key)
        }
        let inputs = try SafetensorsFile(contentsOf: dir.appendingPathComponent("inputs.safetensors"))
        let outputs = try SafetensorsFile(contentsOf: dir.appendingPathComponent("outputs.safetensors"))
        let tasks = try inputs.intTensor("task_ids").values
        let ids = try inputs.intRows("input_ids"), mask = try inputs.intRows("attention_mask")
        let dec = try inputs.intRows("decoder_input_ids")
        let ctx = Context.inference(taskIDs: tasks)
        let logits = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, ctx).value
        let expected = try outputs.tensor("peft_output")
        assertClose(logits, expected, rtol: 1e-5, atol: 1e-5 * (expected.abs().scalars.max() ?? 1))
        XCTAssertGreaterThan(try (logits - outputs.tensor("base_output")).abs().scalars.max() ?? 0, 1e-3,
                             "the adapters change the output, so the match is meaningful")
        // Gradients of sum(logits^2) w.r.t. every adapter tensor, through attention, norms and the tied head.
        let grads = try SafetensorsFile(contentsOf: dir.appendingPathComponent("grads.safetensors"))
        let train = Context(mode: .eval, taskIDs: tasks)
        model.freeze(where: { $0.contains("base_layer") || !$0.contains("poly") })
        model.zeroGrad()
        let y = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, train)
        let loss = try y.squared().sum()
        XCTAssertEqual(loss.value.scalarValue, try grads.tensor("loss").scalars[0], accuracy: 1e-4 * loss.value.scalarValue)
        try loss.backward()
        for key in adapter.keys {
            let name = String(key.dropFirst("base_model.model.".count))
            let want = try grads.tensor("grad." + key)
            let got = params[name]!.grad ?? Tensor.zeros(want.shape)
            assertClose(got, want, rtol: 1e-4, atol: 1e-4 * (want.abs().scalars.max() ?? 1), name)
        }
        ctx.adaptersEnabled = false
        assertClose(try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, ctx).value,
                    try outputs.tensor("base_output"), rtol: 1e-5, atol: 1e-5)
    }
}
