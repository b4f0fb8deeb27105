import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Prefix tuning beyond the golden cases (which load PEFT's files): the projection's training form against PEFT's
/// prompt encoder, saving and reloading (SEQ_CLS with its classifier, as PEFT saves it), gradients by finite
/// differences, generation with a prefix, and the errors.
final class PrefixTuningTests: XCTestCase {
    static let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    static func t5Config() -> T5Config {
        T5Config(vocabSize: 13, dModel: 8, dKV: 4, dFF: 12, numLayers: 3, numDecoderLayers: 3, numHeads: 2,
                 relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 12, dropoutRate: 0, eosTokenID: 1)
    }

    func testProjectionTrainsAsPEFTsPromptEncoderAndSavesTheProjectedTable() throws {
        let dir = GoldenConformanceTests.goldenDirectories.last!.appendingPathComponent("prefix_proj_bert")
        let baseConfig = try BertConfig(json: try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("base_config.json"))))
        let bert = try BertModel(config: baseConfig, addPoolingLayer: false)
        try bert.loadStateDict(try Safetensors.read(dir.appendingPathComponent("base_model.safetensors")), source: "base")
        var config = try PrefixTuningConfig(json: try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("adapter/adapter_config.json"))))
        config.inferenceMode = false                                   // the training form: embedding + MLP
        var rng = Xoshiro256(seed: 1)
        let peft = try PeftModel(wrapping: bert, config: config, using: &rng)
        let encoder = try Safetensors.read(dir.appendingPathComponent("prompt_encoder.safetensors"))
        let params = peft.adapterParameters()
        XCTAssertEqual(params.map(\.key), ["embedding.weight", "transform.0.weight", "transform.0.bias", "transform.2.weight", "transform.2.bias"])
        for (key, p) in params { p.value = try XCTUnwrap(encoder[key], key) }

        let inputs = try SafetensorsFile(contentsOf: dir.appendingPathComponent("inputs.safetensors"))
        let outputs = try Safetensors.read(dir.appendingPathComponent("outputs.safetensors"))
        let y = try bert.forward(inputIDs: try inputs.intRows("input_ids"), attentionMask: try inputs.intRows("attention_mask"),
                                 tokenTypeIDs: try inputs.intRows("token_type_ids"), Context(mode: .eval)).sequence
        assertClose(y.value, outputs["peft_output"]!, rtol: 1e-5, atol: 1e-5)
        try y.squared().sum().backward()
        for (key, p) in params { assertClose(p.grad!, encoder["grad." + key]!, rtol: 1e-4, atol: 1e-5, key) }

        // The file holds only the projected table, which is what PEFT saved.
        let saved = try peft.adapterTensors()
        XCTAssertEqual(Array(saved.keys), ["prompt_embeddings"])
        let adapter = try Safetensors.read(dir.appendingPathComponent("adapter/adapter_model.safetensors"))
        assertClose(saved["prompt_embeddings"]!, adapter["prompt_embeddings"]!, rtol: 1e-5, atol: 1e-6)
        XCTAssertTrue(peft.parameterSummary().hasPrefix("trainable params: 760 ||"), peft.parameterSummary())
    }

    func testSaveReloadAndDisabledAdapters() throws {
        for seq2seq in [false, true] {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("prefix-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: url) }
            var rng = Xoshiro256(seed: 3)
            let make: () throws -> (Module, (Context) throws -> Tensor) = {
                if seq2seq {
                    let t5 = try T5ForConditionalGeneration(config: Self.t5Config(), seed: 4)
                    return (t5, { try t5.forward(inputIDs: Self.ids, attentionMask: Self.mask, decoderInputIDs: [[0, 3, 4], [0, 5, 6]], $0).value })
                }
                let bert = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 4)
                return (bert, { try bert.forward(inputIDs: Self.ids, attentionMask: Self.mask, tokenTypeIDs: Self.types, $0).value })
            }
            let (model, run) = try make()
            let base = try run(.inference())
            let config = PrefixTuningConfig(numVirtualTokens: 2, taskType: seq2seq ? "SEQ_2_SEQ_LM" : "SEQ_CLS", prefixProjection: true, encoderHiddenSize: 5)
            let peft = try PeftModel(wrapping: model, config: config, using: &rng)
            let adapted = try run(.inference())
            XCTAssertGreaterThan(try (adapted - base).abs().max().scalars[0], 1e-3, "the prefix changes the output")
            let off = Context.inference()
            off.adaptersEnabled = false
            assertClose(try run(off), base, rtol: 0, atol: 0, "adapters disabled: the base model")
            try peft.save(to: url)
            let json = try JSONValue(parsing: try Data(contentsOf: url.appendingPathComponent("adapter_config.json")))
            XCTAssertNil(json["target_modules"])
            XCTAssertEqual(json["num_transformer_submodules"], .int(seq2seq ? 2 : 1))
            XCTAssertEqual(json["num_layers"], .int(seq2seq ? 3 : 2))

            let (fresh, rerun) = try make()
            let loaded = try PeftModel.load(from: url, into: fresh)
            assertClose(try rerun(.inference()), adapted, rtol: 1e-6, atol: 1e-6, "reloaded")
            XCTAssertEqual(loaded.adapterParameters().map(\.key),
                           seq2seq ? ["prompt_embeddings"] : ["prompt_embeddings", "base_model.classifier.weight", "base_model.classifier.bias"])
        }
    }

    func testSequenceClassificationTrainsAndSavesTheClassifierAsPEFT() throws {
        // PEFT's PeftModelForSequenceClassification adds classifier and score to modules_to_save: the classifier
        // trains and is saved, under base_model.classifier.* for prompt learning (its PeftModel holds the model
        // directly). PEFT refuses a SEQ_CLS folder without those tensors (KeyError 'base_model.classifier.weight').
        var rng = Xoshiro256(seed: 11)
        let bert = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 12)
        let peft = try PeftModel(wrapping: bert, config: PrefixTuningConfig(numVirtualTokens: 2, taskType: "SEQ_CLS"), using: &rng)
        XCTAssertEqual(peft.adapterParameters().map(\.key), ["prompt_embeddings", "base_model.classifier.weight", "base_model.classifier.bias"])
        XCTAssertTrue(peft.adapterParameters().allSatisfy { $0.parameter.requiresGrad })
        XCTAssertEqual(peft.config.json["modules_to_save"], ["classifier", "score"])
        XCTAssertEqual(Set(try peft.adapterTensors().keys), ["prompt_embeddings", "base_model.classifier.weight", "base_model.classifier.bias"])

        // A folder as PEFT 0.21.2 writes it (its wrapper adds the heads twice) loads, classifier included.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prefix-cls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let config: JSONValue = [
            "auto_mapping": .null, "base_model_name_or_path": .null, "encoder_hidden_size": 8, "inference_mode": true,
            "init_weights": .null, "modules_to_save": ["classifier", "score", "classifier", "score"],
            "num_attention_heads": 2, "num_layers": 2, "num_transformer_submodules": 1, "num_virtual_tokens": 2,
            "peft_type": "PREFIX_TUNING", "peft_version": "0.21.2", "prefix_projection": false, "revision": .null,
            "task_type": "SEQ_CLS", "token_dim": 8]
        var g = Xoshiro256(seed: 13)
        let tensors = ["prompt_embeddings": Tensor.normal([2, 32], using: &g), "base_model.classifier.weight": Tensor.normal([3, 8], using: &g),
                       "base_model.classifier.bias": Tensor.normal([3], using: &g)]
        try PeftAdapterFolder.write(config: config, tensors: tensors, to: url)
        let fresh = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 12)
        let loaded = try PeftModel.load(from: url, into: fresh)
        assertClose(try XCTUnwrap(fresh.namedParameters().first { $0.name == "classifier.weight" }).parameter.value,
                    tensors["base_model.classifier.weight"]!, rtol: 0, atol: 0)
        XCTAssertEqual(try loaded.adapterTensors(), tensors)
        XCTAssertEqual(loaded.config.json, config, "saved again as read")
    }

    func testPrefixGradientsByFiniteDifferences() throws {
        // BERT (mask with padding, token types kept for SEQ_CLS) and T5 (decoder self-attention, relative bias offset).
        var rng = Xoshiro256(seed: 5)
        let bert = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 6)
        let pb = try PeftModel(wrapping: bert, config: PrefixTuningConfig(numVirtualTokens: 2, taskType: "SEQ_CLS"), using: &rng)
        try paramGradCheck(pb.adapterParameters().map(\.parameter)) {
            try bert.forward(inputIDs: Self.ids, attentionMask: Self.mask, tokenTypeIDs: Self.types, Context(mode: .eval))
        }
        let t5 = try T5ForConditionalGeneration(config: Self.t5Config(), seed: 7)
        let pt = try PeftModel(wrapping: t5, config: PrefixTuningConfig(numVirtualTokens: 2, taskType: "SEQ_2_SEQ_LM",
                                                                          prefixProjection: true, encoderHiddenSize: 3), using: &rng)
        try paramGradCheck(pt.adapterParameters().map(\.parameter)) {
            try t5.forward(inputIDs: Self.ids, attentionMask: Self.mask, decoderInputIDs: [[0, 3, 4], [0, 5, 6]], Context(mode: .eval))
        }
    }

    func testT5LayoutAndGenerationWithAPrefix() throws {
        // Three decoder blocks with num_transformer_submodules 2 read slices (0, 1), (4, 5), (2, 3): PEFT's layout.
        var rng = Xoshiro256(seed: 8)
        let t5 = try T5ForConditionalGeneration(config: Self.t5Config(), seed: 9)
        let peft = try PeftModel(wrapping: t5, config: PrefixTuningConfig(numVirtualTokens: 3, taskType: "SEQ_2_SEQ_LM"), using: &rng)
        let encoder = try XCTUnwrap(peft.adapters.first?.layer as? PrefixEncoder)
        XCTAssertEqual(encoder.keySlices, [0, 4, 2])
        XCTAssertFalse(encoder.keepsTokenTypes)
        for p in peft.adapterParameters() { p.parameter.value = p.parameter.value * 3 }
        // A cache seeded with the prefix decodes exactly as the full recomputation, greedy and with beams.
        for beams in [1, 3] {
            let cached = try t5.generate(inputIDs: Self.ids, attentionMask: Self.mask,
                                         config: GenerationConfig(maxLength: 6, numBeams: beams, useCache: true), .inference())
            let full = try t5.generate(inputIDs: Self.ids, attentionMask: Self.mask,
                                       config: GenerationConfig(maxLength: 6, numBeams: beams, useCache: false), .inference())
            XCTAssertEqual(cached, full, "beams \(beams)")
        }
    }

    func testErrorsNameTheProblem() throws {
        var rng = Xoshiro256(seed: 10)
        let mlp = try MLP([.linear(name: "fc1", inFeatures: 4, outFeatures: 4, bias: true)], using: &rng)
        XCTAssertThrowsError(try PeftModel(wrapping: mlp, config: PrefixTuningConfig(numVirtualTokens: 2), using: &rng)) {
            XCTAssertEqual("\($0)", "prefix tuning needs a model whose attention takes key/value prefixes (BertModel, BertForSequenceClassification, T5ForConditionalGeneration), not MLP")
        }
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 1)     // 2 heads of 3, d_model 8
        XCTAssertThrowsError(try PeftModel(wrapping: t5, config: PrefixTuningConfig(numVirtualTokens: 2, taskType: "SEQ_2_SEQ_LM"), using: &rng)) {
            XCTAssertEqual("\($0)", "prefix tuning: token_dim 8 with 2 heads (head size 4) does not fit the model's attention (2 heads of 3, hidden size 8)")
        }
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        _ = try PeftModel(wrapping: bert, config: PrefixTuningConfig(numVirtualTokens: 2), using: &rng)
        XCTAssertThrowsError(try PeftModel(wrapping: bert, config: PrefixTuningConfig(numVirtualTokens: 2), using: &rng)) {
            XCTAssertEqual("\($0)", "prefix tuning: the model already has a key/value prefix source installed")
        }
        XCTAssertThrowsError(try PrefixTuningConfig(json: ["peft_type": "PREFIX_TUNING"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: num_virtual_tokens must be set")
        }
        XCTAssertThrowsError(try PrefixTuningConfig(json: ["peft_type": "PREFIX_TUNING", "num_virtual_tokens": 2, "init_weights": "ones"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: init_weights must be \"zero\" or null, got \"ones\"")
        }
        // Sizes that could only be an accident are refused before anything is allocated.
        XCTAssertThrowsError(try PrefixTuningConfig(json: ["peft_type": "PREFIX_TUNING", "num_virtual_tokens": .int(1 << 60),
                                                           "num_layers": 2, "token_dim": 8])) {
            XCTAssertEqual("\($0)", "adapter_config.json: num_virtual_tokens x 2 x num_layers x token_dim = 1152921504606846976 x 2 x 2 x 8 "
                + "exceeds 268435456 elements (the table would not fit in memory)")
        }
        XCTAssertThrowsError(try PeftModel(wrapping: try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false),
                                           config: PrefixTuningConfig(numVirtualTokens: 10), using: &rng)) {
            XCTAssertEqual("\($0)", "prefix tuning: 10 virtual tokens leave no room in the model's 10 positions")
        }
        // A config that fails leaves the model as it was (no prefix installed, parameters trainable), so a corrected
        // one can be attached.
        let retry = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        var failing = PrefixTuningConfig(numVirtualTokens: 2)
        failing.modulesToSave = ["nope"]
        XCTAssertThrowsError(try PeftModel(wrapping: retry, config: failing, using: &rng)) {
            XCTAssertEqual("\($0)", "modules_to_save entry 'nope' matched no module of the model")
        }
        XCTAssertNil(retry.keyValuePrefix)
        XCTAssertTrue(retry.namedParameters().allSatisfy { $0.parameter.requiresGrad })
        XCTAssertNoThrow(try PeftModel(wrapping: retry, config: PrefixTuningConfig(numVirtualTokens: 2), using: &rng))
        // A classifier whose encoder was replaced cannot take the prefix: an error, not a prefix that is never read.
        let classifier = try BertForSequenceClassification(config: BertModelTests.tinyConfig())
        try classifier.replace(path: "bert", with: Module())
        XCTAssertThrowsError(try PeftModel(wrapping: classifier, config: PrefixTuningConfig(numVirtualTokens: 2, taskType: "SEQ_CLS"), using: &rng)) {
            XCTAssertEqual("\($0)", "prefix tuning: BertForSequenceClassification did not take the key/value prefix (a sublayer that holds its attention was replaced)")
        }
        // A flattened table cannot go into a projection in training mode (PEFT refuses too).
        let projected = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        let pp = try PeftModel(wrapping: projected, config: PrefixTuningConfig(numVirtualTokens: 2, prefixProjection: true,
                                                                               encoderHiddenSize: 3), using: &rng)
        XCTAssertThrowsError(try pp.loadAdapterTensors(try pp.adapterTensors())) {
            XCTAssertTrue("\($0)".hasPrefix("prefix tuning: a saved prompt_embeddings table cannot be loaded into the encoder that computes it in training"), "\($0)")
        }
        // A T5 decoder cache filled without the prefix is not silently reused.
        let t5p = try T5ForConditionalGeneration(config: Self.t5Config(), seed: 2)
        let (states, encMask) = try t5p.encode(inputIDs: Self.ids, attentionMask: Self.mask, .inference())
        let cache = T5DecoderCache(layers: 3)
        _ = try t5p.decode(decoderInputIDs: [[0], [0]], encoderStates: states, encoderMask: encMask, cache: cache, .inference())
        _ = try PeftModel(wrapping: t5p, config: PrefixTuningConfig(numVirtualTokens: 2, taskType: "SEQ_2_SEQ_LM"), using: &rng)
        XCTAssertThrowsError(try t5p.decode(decoderInputIDs: [[3], [4]], encoderStates: states, encoderMask: encMask, cache: cache, .inference())) {
            XCTAssertEqual("\($0)", "t5: the decoder cache was filled without the installed key/value prefix; start from an empty cache")
        }

        let long = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)   // 10 positions
        _ = try PeftModel(wrapping: long, config: PrefixTuningConfig(numVirtualTokens: 6), using: &rng)
        XCTAssertThrowsError(try long.forward(inputIDs: Self.ids, .inference())) {
            XCTAssertEqual("\($0)", "bert: 6 prefix positions and sequence length 5 exceed max_position_embeddings 10")
        }
    }
}
