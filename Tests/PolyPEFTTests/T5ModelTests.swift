import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class T5ModelTests: XCTestCase {
    let ids = [[3, 4, 5, 6, 2], [7, 8, 9, 1, 0]]
    let mask = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    let dec = [[0, 5, 6], [0, 9, 2]]

    func testGradientsOfAFewParameters() throws {
        for gated in [false, true] {
            let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(gated: gated, tied: !gated, activation: .gelu),
                                                   seed: 3)   // smooth activations: ReLU kinks defeat finite differences
            let names = ["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         "encoder.block.1.layer.0.SelfAttention.q.weight", "decoder.block.1.layer.1.EncDecAttention.k.weight",
                         gated ? "decoder.block.0.layer.2.DenseReluDense.wi_0.weight" : "encoder.block.0.layer.1.DenseReluDense.wi.weight",
                         "decoder.final_layer_norm.weight"]
            let all = Dictionary(model.namedParameters().map { ($0.name, $0.parameter) }, uniquingKeysWith: { a, _ in a })
            let params = names.map { all[$0]! }
            try paramGradCheck(params, step: 1e-2, rtol: 1e-2) {
                try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context())
            }
        }
    }

    func testGradientsWithDropoutInTraining() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(gated: true, dropout: 0.2, layers: 1), seed: 8)
        let all = Dictionary(model.namedParameters().map { ($0.name, $0.parameter) }, uniquingKeysWith: { a, _ in a })
        let params = ["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      "decoder.block.0.layer.1.EncDecAttention.v.weight"].map { all[$0]! }
        var probe = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context(mode: .train)).value
        XCTAssertNotEqual(probe, try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, .inference()).value,
                          "dropout is active in training")
        probe = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context(mode: .train)).value
        try paramGradCheck(params, step: 1e-2, rtol: 1e-2) {   // the same masks on every run: a fresh seeded context
            try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context(mode: .train, rng: Xoshiro256(seed: 4)))
        }
    }

    func testSharedEmbeddingGradientSumsEncoderDecoderAndHead() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(layers: 1), seed: 4)
        let shared = (model.module(at: "shared") as! Embedding).weight
        try paramGradCheck([shared], step: 1e-2, rtol: 1e-2) {
            try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context())
        }
    }

    func testPaddingIsIgnoredAndLossShiftsLabels() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 5)
        // Changing a padded token does not change the output.
        var other = ids
        other[1][4] = 11
        let a = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, .inference()).value
        let b = try model.forward(inputIDs: other, attentionMask: mask, decoderInputIDs: dec, .inference()).value
        assertClose(a, b)
        let c = try model.forward(inputIDs: other, attentionMask: nil, decoderInputIDs: dec, .inference()).value
        XCTAssertNotEqual(a.scalars, c.scalars)
        // Causality: a later decoder token does not change earlier logits.
        let d = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: [[0, 5, 7], [0, 9, 3]], .inference()).value
        assertClose(try d.sliced(axis: 1, end: 2).contiguous(), try a.sliced(axis: 1, end: 2).contiguous())
        // Labels: shifted right with the start token, -100 -> pad; ignored in the loss.
        XCTAssertEqual(try model.shiftRight([[5, 6, -100]]), [[0, 5, 6]])
        let labels = [[5, 6, -100], [9, 2, 1]]
        let loss = try model.loss(inputIDs: ids, attentionMask: mask, labels: labels, .inference()).value.scalarValue
        let logits = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: [[0, 5, 6], [0, 9, 2]], .inference())
        let manual = try Loss.crossEntropy(logits, targets: [5, 6, -100, 9, 2, 1]).value.scalarValue
        XCTAssertEqual(loss, manual, accuracy: 1e-6)
    }

    func testRelativePositionBuckets() {
        // Hand-computed from T5's definition (32 buckets, max distance 128); relative position = key - query.
        let bi = [-1, 1, -8, -9, -12, -20, -128, -1000, 5, 20].map {
            RelativePositionBias.bucket($0, bidirectional: true, numBuckets: 32, maxDistance: 128)
        }
        XCTAssertEqual(bi, [1, 17, 8, 8, 9, 10, 15, 15, 21, 26])
        let causal = [-3, 3, -20, -200, 0].map {
            RelativePositionBias.bucket($0, bidirectional: false, numBuckets: 32, maxDistance: 128)
        }
        XCTAssertEqual(causal, [3, 0, 17, 31, 0])
        // Queries at an offset (cached decoding) see the same buckets as the last rows of the full matrix.
        let full = RelativePositionBias.buckets(queryLength: 6, keyLength: 6, offset: 0, bidirectional: false, numBuckets: 8, maxDistance: 12)
        let last = RelativePositionBias.buckets(queryLength: 1, keyLength: 6, offset: 5, bidirectional: false, numBuckets: 8, maxDistance: 12)
        XCTAssertEqual(Array(full.suffix(6)), last)
    }

    func testInputErrors() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 5)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[3, 13]], attentionMask: nil, decoderInputIDs: [[0]], .inference()) }
            .contains("token id 13"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[3, 4]], attentionMask: [[1]], decoderInputIDs: [[0]], .inference()) }
            .contains("attention_mask"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[3, 4]], attentionMask: [[1, 2]], decoderInputIDs: [[0]], .inference()) }
            .contains("not 0 or 1"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[3, 4], [5]], attentionMask: nil, decoderInputIDs: [[0], [0]], .inference()) }
            .contains("row 1"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[3, 4]], attentionMask: nil, decoderInputIDs: [[0], [0]], .inference()) }
            .contains("do not fit"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[3, 4]], attentionMask: nil, decoderInputIDs: [[0]], .inference(taskIDs: [0, 1])) }
            .contains("task ids"))
        XCTAssertTrue(message { _ = try model.shiftRight([[40]]) }.contains("40"))
    }

    func testConfigParsing() throws {
        let json = """
        {"vocab_size": 100, "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_heads": 4,
         "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "some_unknown_key": [1, 2], "dropout_rate": 0.1}
        """
        let c = try T5Config(data: Data(json.utf8))
        XCTAssertEqual(c.numDecoderLayers, 2)
        XCTAssertEqual(c.feedForward, .gated(.geluTanh))
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertFalse(c.scaleDecoderOutputs)
        XCTAssertEqual(c.relativeAttentionNumBuckets, 32)
        let m = try T5ForConditionalGeneration(config: c)
        let names = Set(m.namedParameters().map(\.name))
        XCTAssertTrue(names.contains("encoder.block.1.layer.1.DenseReluDense.wi_1.weight"))
        XCTAssertFalse((m.module(at: "lm_head") as! Linear).weight === (m.module(at: "shared") as! Embedding).weight)
        func error(_ s: String) -> String {
            do { _ = try T5Config(data: Data(s.utf8)); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(#"{"vocab_size": 100, "d_model": 16, "d_kv": 4, "num_layers": 2, "num_heads": 4}"#).contains("'d_ff'"))
        XCTAssertTrue(error(#"{"vocab_size": 100, "d_model": "x", "d_kv": 4, "d_ff": 8, "num_layers": 2, "num_heads": 4}"#).contains("'d_model' must be an integer"))
        XCTAssertTrue(error(#"{"vocab_size": 100, "d_model": 16, "d_kv": 4, "d_ff": 8, "num_layers": 2, "num_heads": 4, "feed_forward_proj": "gated-swish"}"#).contains("gated-swish"))
        XCTAssertTrue(error(#"{"vocab_size": 100, "d_model": 16, "d_kv": 4, "d_ff": 8, "num_layers": 0, "num_heads": 4}"#).contains("num_layers"))
        XCTAssertTrue(error("[1]").contains("JSON object"))
        XCTAssertTrue(error("{").contains("invalid JSON"))
    }

    func testLoadingErrorsNameKeysAndShapes() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(layers: 1), seed: 1)
        let full = model.stateDict()
        // Any one of the tied names suffices.
        var onlyShared = full
        for k in ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"] { onlyShared[k] = nil }
        try model.loadStateDict(onlyShared)
        var onlyHead = full
        for k in ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "shared.weight"] { onlyHead[k] = nil }
        try model.loadStateDict(onlyHead)

        var bad = full
        bad["encoder.final_layer_norm.weight"] = nil
        bad["encoder.block.0.layer.0.SelfAttention.q.weight"] = Tensor.zeros([5, 8])
        bad["decoder.extra.weight"] = Tensor.zeros([1])
        let before = model.namedParameters()[3].parameter.value
        XCTAssertThrowsError(try model.loadStateDict(bad)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("missing tensor 'encoder.final_layer_norm.weight'"), m)
            XCTAssertTrue(m.contains("unexpected tensor 'decoder.extra.weight' (the model has no such parameter)"), m)
            XCTAssertTrue(m.contains("tensor 'encoder.block.0.layer.0.SelfAttention.q.weight' has shape [5, 8], the model expects [6, 8]"), m)
        }
        XCTAssertEqual(model.namedParameters()[3].parameter.value, before, "nothing modified on error")
        var untied = full
        untied["lm_head.weight"] = Tensor.zeros([13, 8])
        XCTAssertThrowsError(try model.loadStateDict(untied)) { e in XCTAssertTrue("\(e)".contains("different values"), "\(e)") }
    }
}
