import XCTest
@testable import PolyPEFT

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

    static func rows(_ f: SafetensorsFile, _ key: String) throws -> [[Int]] {
        let (values, shape) = try f.intTensor(key)
        return (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    }

    func testBaseLogitsMatchTransformers() throws {
        let model = try Self.loadBase()
        let inputs = try SafetensorsFile(contentsOf: Self.caseDir.appendingPathComponent("inputs.safetensors"))
        let outputs = try SafetensorsFile(contentsOf: Self.caseDir.appendingPathComponent("outputs.safetensors"))
        let ids = try Self.rows(inputs, "input_ids"), mask = try Self.rows(inputs, "attention_mask")
        let dec = try Self.rows(inputs, "decoder_input_ids")
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
        XCTAssertEqual(T5ForConditionalGeneration.defaultTargetModules, ["q", "v"])
    }
}
