import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class BertModelTests: XCTestCase {
    static func tinyConfig(dropout: Float = 0) -> BertConfig {
        BertConfig(vocabSize: 17, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 12,
                   hiddenDropoutProb: dropout, attentionProbsDropoutProb: dropout, maxPositionEmbeddings: 10,
                   typeVocabSize: 2, layerNormEps: 1e-12, initializerRange: 0.5, numLabels: 3)
    }

    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func testHuggingFaceNames() throws {
        var c = Self.tinyConfig()
        c.numHiddenLayers = 1
        let model = try BertForSequenceClassification(config: c)
        let expected = [
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
            "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.bias",
            "encoder.layer.0.attention.self.key.weight", "encoder.layer.0.attention.self.key.bias",
            "encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.self.value.bias",
            "encoder.layer.0.attention.output.dense.weight", "encoder.layer.0.attention.output.dense.bias",
            "encoder.layer.0.attention.output.LayerNorm.weight", "encoder.layer.0.attention.output.LayerNorm.bias",
            "encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.intermediate.dense.bias",
            "encoder.layer.0.output.dense.weight", "encoder.layer.0.output.dense.bias",
            "encoder.layer.0.output.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.bias",
            "pooler.dense.weight", "pooler.dense.bias",
        ].map { "bert." + $0 } + ["classifier.weight", "classifier.bias"]
        XCTAssertEqual(model.namedParameters().map(\.name), expected)
        XCTAssertEqual(LoraConfig.defaultTargetModules(modelType: model.modelType), ["query", "value"])
        XCTAssertNil(try BertModel(config: c, addPoolingLayer: false).module(at: "pooler"))
    }

    func testAttentionMatchesManualComputation() throws {
        // One layer, checked against an unfused computation written out from HF's formulas.
        var c = Self.tinyConfig()
        c.numHiddenLayers = 1
        let model = try BertModel(config: c, addPoolingLayer: false, seed: 2)
        let ctx = Context.inference()
        let emb = model.module(at: "embeddings") as! BertEmbeddings
        let x = try emb.forward(words: try emb.words(ids: ids.flatMap { $0 }, batch: 2, length: 5, ctx),
                                types: types.flatMap { $0 }, ctx)
        let sa = model.module(at: "encoder.layer.0.attention.self") as! BertSelfAttention
        let m = try TokenBatch.paddingMask(mask, batch: 2, length: 5, "mask")
        func heads(_ n: String) throws -> Variable {
            try sa.layer(n).forward(x, ctx).reshaped([2, 5, 2, 4]).permuted([0, 2, 1, 3])
        }
        let ref = try Variable.attentionReference(query: try heads("query"), key: try heads("key"), value: try heads("value"),
                                                  mask: m, scale: 0.5).permuted([0, 2, 1, 3]).reshaped([2, 5, 8])
        assertClose(try sa.forward(x, mask: m, ctx).value, ref.value, rtol: 1e-5, atol: 1e-6)
    }

    func testPaddingTypesAndGradients() throws {
        let model = try BertForSequenceClassification(config: Self.tinyConfig(), seed: 3)
        let a = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, .inference()).value
        var other = ids
        other[1][4] = 16
        assertClose(try model.forward(inputIDs: other, attentionMask: mask, tokenTypeIDs: types, .inference()).value, a,
                    rtol: 1e-5, atol: 1e-6)
        XCTAssertNotEqual(try model.forward(inputIDs: ids, attentionMask: mask, .inference()).value, a, "token types matter")
        XCTAssertEqual(a.shape, [2, 3])
        let all = Dictionary(model.namedParameters().map { ($0.name, $0.parameter) }, uniquingKeysWith: { a, _ in a })
        let params = ["bert.embeddings.position_embeddings.weight", "bert.encoder.layer.0.attention.self.key.weight",
                      "bert.encoder.layer.1.attention.self.value.bias", "bert.encoder.layer.0.output.LayerNorm.weight",
                      "bert.pooler.dense.weight", "classifier.bias"].map { all[$0]! }
        try paramGradCheck(params, step: 1e-2, rtol: 1e-2) {
            try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context())
        }
    }

    func testClassifierTrains() throws {
        var c = Self.tinyConfig()
        c.initializerRange = 0.1
        let model = try BertForSequenceClassification(config: c, seed: 4)
        let opt = Adam([ParameterGroup(parameters: model.trainableParameters(), learningRate: 1e-2)])
        // Label = which of tokens 3, 4, 5 the sequence contains.
        let x = (0..<12).map { i in [2, 6 + i % 5, 3 + i % 3, 9] }, y = (0..<12).map { $0 % 3 }
        var losses: [Float] = []
        for _ in 0..<30 {
            model.zeroGrad()
            let l = try model.loss(inputIDs: x, labels: y, Context(mode: .train))
            try l.backward()
            opt.step()
            losses.append(l.value.scalarValue)
        }
        XCTAssertLessThan(losses.last!, losses.first! * 0.3, "\(losses.first!) -> \(losses.last!)")
    }

    func testConfigAndInputErrors() throws {
        let json = """
        {"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
         "intermediate_size": 16, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "id2label": {"0": "a", "1": "b", "2": "c"},
         "architectures": ["BertForSequenceClassification"], "classifier_dropout": null}
        """
        let c = try BertConfig(data: Data(json.utf8))
        XCTAssertEqual(c.numLabels, 3)
        XCTAssertEqual(c.hiddenAct, .gelu)
        XCTAssertEqual(c.classifierDropout, 0.1)
        func error(_ s: String) -> String { do { _ = try BertConfig(data: Data(s.utf8)); return "" } catch { return "\(error)" } }
        XCTAssertTrue(error(#"{"vocab_size": 30, "hidden_size": 9, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4}"#)
            .contains("multiple"))
        XCTAssertTrue(error(#"{"vocab_size": 30, "hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 4}"#)
            .contains("'num_hidden_layers'"))
        XCTAssertTrue(error(#"{"vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4, "hidden_act": "quick_gelu"}"#)
            .contains("quick_gelu"))
        let model = try BertModel(config: Self.tinyConfig())
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[1, 17]], .inference()) }.contains("token id 17"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[1, 2]], tokenTypeIDs: [[0, 2]], .inference()) }.contains("token_type_ids"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [[1, 2]], attentionMask: [[1, 1, 1]], .inference()) }.contains("attention_mask"))
        XCTAssertTrue(message { _ = try model.forward(inputIDs: [Array(repeating: 1, count: 11)], .inference()) }.contains("max_position_embeddings"))
    }
}
