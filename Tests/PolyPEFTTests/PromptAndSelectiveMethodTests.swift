import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// BEFT, LN tuning, prompt tuning and P-tuning beyond their golden cases: forwards against the formula, gradients
/// against finite differences, merge and unmerge, initialisations, save and reload, and the errors.
final class PromptAndSelectiveMethodTests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func testBeftAddsABiasAndMergesIntoTheBaseBias() throws {
        var g = Xoshiro256(seed: 1)
        let x = randomTensor([4, 6], seed: 2)
        let base = Linear(6, 5, using: &g)
        let beft = BeftLayer(wrapping: base, path: "fc", initWeights: false, using: &g)
        XCTAssertEqual(beft.adapterParameters().map(\.name), ["beft_bias"])
        XCTAssertEqual(beft.bias.value.shape, [1, 5])
        let y = try beft(Variable(x), Context.inference()).value
        assertClose(y, try (try x.matmul(base.weight.value.T) + base.bias!.value) + beft.bias.value, rtol: 1e-6)
        try paramGradCheck([beft.bias]) { try beft(Variable(x), Context()) }
        try gradCheck([x]) { v in try beft(v[0], Context()) }
        let before = base.bias!.value
        try beft.merge()
        assertClose(try beft(Variable(x), Context.inference()).value, y, rtol: 1e-6, atol: 1e-6, "merged")
        try beft.unmerge()
        assertClose(base.bias!.value, before, rtol: 0, atol: 1e-6)
        XCTAssertEqual(BeftLayer(wrapping: Linear(6, 5, using: &g), path: "z", using: &g).bias.value, Tensor.zeros([1, 5]), "init_weights: zeros")

        let noBias = BeftLayer(wrapping: try Linear(weight: randomTensor([2, 3], seed: 3), bias: nil), path: "nb", using: &g)
        XCTAssertThrowsError(try noBias.merge()) {
            XCTAssertEqual("\($0)", "nb: the base layer has no bias, so the BEFT bias cannot be merged")
        }
        // PEFT's defaults: BERT's value projections.
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        let peft = try PeftModel(wrapping: bert, config: BeftConfig(), using: &g)
        XCTAssertEqual(peft.adapterParameters().map(\.key), ["base_model.model.encoder.layer.0.attention.self.value.beft_bias",
                                                             "base_model.model.encoder.layer.1.attention.self.value.beft_bias"])
        // PEFT's BEFT config has no exclude_modules: such a key is kept and reported, not acted on.
        XCTAssertEqual(try BeftConfig(json: ["peft_type": "BEFT", "exclude_modules": ["x"]]).warnings,
                       ["unknown key 'exclude_modules' kept as is (PolyPEFT does not use it)"])
    }

    func testLNTuningTrainsACopyOfTheNormAndMergesByValue() throws {
        let x = randomTensor([3, 4, 6], seed: 4)
        let norm = LayerNorm(6, eps: 1e-5)
        norm.weight.value = randomTensor([6], seed: 5, low: 0.5, high: 1.5)
        norm.bias!.value = randomTensor([6], seed: 6)
        norm.freeze()
        let ln = LNTuningLayer(wrapping: norm, path: "ln")
        XCTAssertEqual(ln.adapterParameters().map(\.name), ["ln_tuning_layers.weight", "ln_tuning_layers.bias"])
        XCTAssertTrue(ln.adapterParameters().allSatisfy { $0.parameter.requiresGrad })
        let copy = try XCTUnwrap(ln.tuned as? LayerNorm)
        XCTAssertFalse(copy.weight === norm.weight)
        assertClose(try ln(Variable(x), Context.inference()).value, try norm(Variable(x), Context.inference()).value, rtol: 0, atol: 0,
                    "starts as the base")
        copy.weight.value = randomTensor([6], seed: 7, low: 0.5, high: 1.5)
        copy.bias!.value = randomTensor([6], seed: 8)
        let y = try ln(Variable(x), Context.inference()).value
        assertClose(y, try Variable(x).layerNormReference(weight: Variable(copy.weight.value), bias: Variable(copy.bias!.value), eps: 1e-5).value,
                    rtol: 1e-5, atol: 1e-6)
        try paramGradCheck([copy.weight, copy.bias!]) { try ln(Variable(x), Context()) }
        let off = Context.inference()
        off.adaptersEnabled = false
        let baseOut = try ln(Variable(x), off).value
        try ln.merge()
        assertClose(try ln(Variable(x), Context.inference()).value, y, rtol: 0, atol: 0, "merged")
        XCTAssertThrowsError(try ln(Variable(x), off)) {
            XCTAssertEqual("\($0)", "ln: the tuned norm is merged into the base layer; unmerge() before running with adapters disabled")
        }
        try ln.unmerge()
        assertClose(try ln(Variable(x), off).value, baseOut, rtol: 0, atol: 0, "unmerged")

        // RMSNorm (T5's) too; a Linear cannot be LN-tuned; BERT has no PEFT default.
        let rms = LNTuningLayer(wrapping: RMSNorm(6), path: "rms")
        XCTAssertEqual(rms.adapterParameters().map(\.name), ["ln_tuning_layers.weight"])
        var g = Xoshiro256(seed: 9)
        let mlp = try MLP([.linear(name: "fc1", inFeatures: 3, outFeatures: 4, bias: true)], using: &g)
        XCTAssertThrowsError(try PeftModel(wrapping: mlp, config: LNTuningConfig(targetModules: .names(["fc1"])), using: &g)) {
            XCTAssertEqual("\($0)", "target module 'fc1' is a Linear, which LN tuning cannot copy (it tunes norms: LayerNorm, RMSNorm)")
        }
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        XCTAssertThrowsError(try PeftModel(wrapping: bert, config: LNTuningConfig(), using: &g)) {
            XCTAssertEqual("\($0)", "target_modules is not set and this model has no default targets")
        }
        let t5 = try T5ForConditionalGeneration(config: PrefixTuningTests.t5Config(), seed: 1)
        let peft = try PeftModel(wrapping: t5, config: LNTuningConfig(), using: &g)
        XCTAssertEqual(peft.adapters.count, 3 * 2 + 3 * 3 + 2, "every T5 RMS norm: 2 per encoder block, 3 per decoder block, 2 final")
    }

    func testPromptTuningPrependsTrainedRowsAndSavesAsPEFT() throws {
        var rng = Xoshiro256(seed: 10)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 11)
        let plain = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence
        let peft = try PeftModel(wrapping: bert, config: PromptTuningConfig(numVirtualTokens: 2, taskType: "SEQ_CLS"), using: &rng)
        XCTAssertEqual(peft.adapterParameters().map(\.key), ["prompt_embeddings"])
        let table = peft.adapterParameters()[0].parameter
        XCTAssertEqual(table.value.shape, [2, 8])
        XCTAssertEqual(peft.config.json["token_dim"], 8)
        XCTAssertEqual(peft.config.json["num_layers"], 2)
        XCTAssertEqual(peft.config.json["num_attention_heads"], 2)
        XCTAssertEqual(peft.config.json["num_transformer_submodules"], 1)
        // The same as feeding the rows as input embeddings with the mask extended and (SEQ_CLS) token types kept.
        let y = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence
        XCTAssertEqual(y.shape, [2, 7, 8])
        let words = try bert.child("embeddings", as: BertEmbeddings.self).words(ids: ids.flatMap { $0 }, batch: 2, length: 5, Context.inference())
        let embeds = try Variable.concatenate([try Variable(table.value).unsqueezed(0).expanded(to: [2, 2, 8]), words], axis: 1)
        let off = Context.inference()
        off.adaptersEnabled = false
        let direct = try bert.forward(inputsEmbeds: embeds, attentionMask: mask.map { [1, 1] + $0 },
                                      tokenTypeIDs: types.map { [0, 0] + $0 }, off).sequence
        assertClose(y.value, direct.value, rtol: 1e-6, atol: 1e-6)
        assertClose(try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, off).sequence.value, plain.value,
                    rtol: 0, atol: 0, "disabled: the base")
        try paramGradCheck([table]) {
            try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .eval)).sequence
        }

        // Saved and reloaded (inference mode, as PEFT writes it) it gives the same output.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prompt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try peft.save(to: url)
        let fresh = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 11)
        _ = try PeftModel.load(from: url, into: fresh)
        assertClose(try fresh.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value,
                    y.value, rtol: 0, atol: 0)

        // Seq2seq: two blocks of rows, the encoder reads the first.
        let t5 = try T5ForConditionalGeneration(config: PrefixTuningTests.t5Config(), seed: 12)
        let pt = try PeftModel(wrapping: t5, config: PromptTuningConfig(numVirtualTokens: 2, taskType: "SEQ_2_SEQ_LM"), using: &rng)
        let t5Table = pt.adapterParameters()[0].parameter
        XCTAssertEqual(t5Table.value.shape, [4, 8])
        try paramGradCheck([t5Table]) {
            try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: [[0, 3, 4], [0, 5, 6]], Context(mode: .eval))
        }
        XCTAssertEqual(try t5Table.grad!.sliced(axis: 0, start: 2, end: 4), Tensor.zeros([2, 8]), "the decoder's block is unused")
    }

    func testPromptTuningStartsFromTextOrSampledVocabulary() throws {
        let tokenizerURL = Bundle.module.url(forResource: "tokenizers/wordpiece_uncased", withExtension: "json")!
        var config = BertModelTests.tinyConfig()
        config.vocabSize = 3000
        let bert = try BertModel(config: config, addPoolingLayer: false, seed: 13)
        let table = try bert.inputEmbeddingTable
        var rng = Xoshiro256(seed: 14)
        let text = PromptTuningConfig(numVirtualTokens: 7, initialization: .text, text: "hello world", tokenizer: tokenizerURL.path)
        let textIDs = try Tokenizer(contentsOf: tokenizerURL).encode("hello world").ids
        XCTAssertGreaterThan(textIDs.count, 2)
        let peft = try PeftModel(wrapping: bert, config: text, using: &rng)
        let rows = (0..<7).map { textIDs[$0 % textIDs.count] }     // repeated to length, as PEFT
        XCTAssertEqual(peft.adapterParameters()[0].parameter.value, try table.indexSelect(axis: 0, rows).contiguous())

        let bert2 = try BertModel(config: config, addPoolingLayer: false, seed: 13)
        let sampled = try PeftModel(wrapping: bert2, config: PromptTuningConfig(numVirtualTokens: 4, initialization: .sampleVocab), using: &rng)
        let t = sampled.adapterParameters()[0].parameter.value
        for i in 0..<4 {
            let row = try t.sliced(axis: 0, start: i, end: i + 1).contiguous().scalars
            XCTAssertTrue((0..<3000).contains { j in table.scalars[j * 8 ..< j * 8 + 8].elementsEqual(row) }, "row \(i) is a vocabulary row")
        }

        // Errors: a tokenizer whose ids the model does not have; TEXT without its inputs; tokenizer_kwargs.
        let small = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        XCTAssertThrowsError(try PeftModel(wrapping: small, config: text, using: &rng)) {
            XCTAssertTrue("\($0)".hasPrefix("prompt tuning: token id "), "\($0)")
            XCTAssertTrue("\($0)".hasSuffix(" is outside the model's vocabulary of 17"), "\($0)")
        }
        XCTAssertThrowsError(try PeftMethods.config(json: ["peft_type": "PROMPT_TUNING", "num_virtual_tokens": 2, "prompt_tuning_init": "TEXT"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: prompt_tuning_init TEXT needs tokenizer_name_or_path (a folder holding tokenizer.json)")
        }
        XCTAssertThrowsError(try PeftMethods.config(json: ["peft_type": "PROMPT_TUNING", "num_virtual_tokens": 2, "prompt_tuning_init": "WORDS"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: 'prompt_tuning_init' must be one of RANDOM, TEXT, SAMPLE_VOCAB, got \"WORDS\"")
        }
        XCTAssertThrowsError(try PeftMethods.config(json: ["peft_type": "PROMPT_TUNING", "num_virtual_tokens": 2, "tokenizer_kwargs": ["a": 1]])) {
            XCTAssertEqual("\($0)", "adapter_config.json: tokenizer_kwargs = {\"a\":1} is not supported by PolyPEFT")
        }
        XCTAssertThrowsError(try PeftMethods.config(json: ["peft_type": "PROMPT_TUNING", "num_virtual_tokens": .int(1 << 40), "token_dim": .int(1 << 20)])) {
            XCTAssertTrue("\($0)".contains("exceeds 268435456 elements"), "\($0)")
        }
        XCTAssertThrowsError(try PeftModel(wrapping: small, config: PromptTuningConfig(numVirtualTokens: 10), using: &rng)) {
            XCTAssertEqual("\($0)", "prompt tuning: 10 virtual tokens leave no room in the model's 10 positions")
        }
    }

    func testPTuningTrainsItsMLPAndSavesItsOutput() throws {
        var rng = Xoshiro256(seed: 15)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 16)
        let peft = try PeftModel(wrapping: bert, config: PromptEncoderConfig(numVirtualTokens: 3, encoderHiddenSize: 5), using: &rng)
        XCTAssertEqual(peft.adapterParameters().map(\.key), ["embedding.weight", "mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.2.weight",
                                                             "mlp_head.2.bias", "mlp_head.4.weight", "mlp_head.4.bias"])
        let params = peft.adapterParameters().map(\.parameter)
        XCTAssertEqual(params.map(\.value.shape), [[3, 8], [5, 8], [5], [5, 5], [5], [8, 5], [8]])
        let source = try XCTUnwrap(peft.adapters[0].layer as? PromptEmbedding)
        let ctx = Context.inference()
        var h = try params[0].value.matmul(params[1].value.T) + params[2].value
        h = (try h.relu().matmul(params[3].value.T) + params[4].value).relu()
        let expected = try h.matmul(params[5].value.T) + params[6].value
        assertClose(try source.table.value(ctx).value, expected, rtol: 1e-5, atol: 1e-6, "mlp_head(embedding)")
        XCTAssertEqual(Set(try peft.adapterTensors().keys), ["prompt_embeddings"])
        try paramGradCheck(params) {
            try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context(mode: .eval)).sequence
        }
        let y = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx).sequence.value

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ptuning-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try peft.save(to: url)
        let fresh = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 16)
        _ = try PeftModel.load(from: url, into: fresh)
        assertClose(try fresh.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx).sequence.value, y, rtol: 1e-6, atol: 1e-6)
        var training = PromptEncoderConfig(numVirtualTokens: 3)
        training.common.inferenceMode = false
        let other = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 16)
        let trainingPeft = try PeftModel(wrapping: other, config: training, using: &rng)
        XCTAssertThrowsError(try trainingPeft.loadAdapterTensors(try PeftAdapterFolder.read(from: url).tensors)) {
            XCTAssertTrue("\($0)".hasPrefix("P-tuning: a saved prompt_embeddings table cannot be loaded"), "\($0)")
        }
        XCTAssertThrowsError(try PeftMethods.config(json: ["peft_type": "P_TUNING", "num_virtual_tokens": 2, "encoder_reparameterization_type": "LSTM"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: encoder_reparameterization_type = \"LSTM\" is not supported by PolyPEFT")
        }
    }
}

/// BitFit: the base's biases train and are saved under PEFT's trainable-bias keys.
final class BitFitTests: XCTestCase {
    func testBitFitTrainsTheChosenBiasesAndSavesThemAsPEFTDoes() throws {
        var rng = Xoshiro256(seed: 20)
        let bert = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 21)
        var config = BitFitConfig()
        config.taskType = "SEQ_CLS"
        let peft = try PeftModel(wrapping: bert, config: config, using: &rng)
        let keys = peft.adapterParameters().map(\.key)
        XCTAssertTrue(keys.contains("base_model.model.bert.embeddings.LayerNorm.bias"))
        XCTAssertTrue(keys.contains("base_model.model.bert.encoder.layer.1.output.dense.bias"))
        XCTAssertTrue(keys.contains("base_model.model.classifier.bias"), "the head, as a saved module")
        XCTAssertEqual(keys.filter { $0.hasSuffix(".bias") }.count, keys.count - 1, "biases and the head's weight only")
        XCTAssertEqual(Set(keys).count, keys.count, "the head's bias once")
        let weights = bert.namedParameters().filter { $0.name.hasSuffix("weight") && !$0.name.hasPrefix("classifier") }
        XCTAssertTrue(weights.allSatisfy { !$0.parameter.requiresGrad }, "weights stay frozen")

        // Training moves the biases only; the file reloads into a fresh model.
        let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask
        let before = bert.namedParameters().map { ($0.name, $0.parameter.value) }
        let opt = Adam.adamW([ParameterGroup(name: "a", parameters: peft.trainableAdapterParameters().map { ($0.key, $0.parameter) }, learningRate: 1e-2)])
        for _ in 0..<3 {
            peft.zeroGrad()
            try Loss.crossEntropy(try bert.forward(inputIDs: ids, attentionMask: mask, Context()), targets: [0, 2]).backward()
            opt.step()
        }
        for ((name, old), (_, p)) in zip(before, bert.namedParameters()) {
            XCTAssertEqual(p.value == old, !(name.hasSuffix("bias") || name.hasPrefix("classifier")), name)
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bitfit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try peft.save(to: url)
        let fresh = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 21)
        _ = try PeftModel.load(from: url, into: fresh)
        assertClose(try fresh.forward(inputIDs: ids, attentionMask: mask, Context.inference()).value,
                    try bert.forward(inputIDs: ids, attentionMask: mask, Context.inference()).value, rtol: 0, atol: 0)

        // A named subset; a subset that matches nothing.
        let mlp = try MLP([.linear(name: "fc1", inFeatures: 3, outFeatures: 4, bias: true), .activation(.relu),
                           .linear(name: "fc2", inFeatures: 4, outFeatures: 2, bias: true)], using: &rng)
        let sub = try PeftModel(wrapping: mlp, config: BitFitConfig(targetModules: .names(["fc2"])), using: &rng)
        XCTAssertEqual(sub.adapterParameters().map(\.key), ["base_model.model.fc2.bias"])
        let other = try MLP([.linear(name: "fc1", inFeatures: 3, outFeatures: 4, bias: true)], using: &rng)
        XCTAssertThrowsError(try PeftModel(wrapping: other, config: BitFitConfig(targetModules: .names(["fc9"])), using: &rng)) {
            XCTAssertEqual("\($0)", "BitFit: target modules [\"fc9\"] matched no module with a bias")
        }
    }
}
