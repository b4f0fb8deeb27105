import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Round trips through Hugging Face model folders.
final class BertLoadingTests: XCTestCase {
    func temporaryDirectory() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("polypeft-bert-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testBertFolderRoundTrip() throws {
        let dir = temporaryDirectory()
        let config: JSONValue = ["model_type": "bert", "vocab_size": 17, "hidden_size": 8, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 10,
                                 "num_labels": 3]
        let base = try BertModel(config: try BertConfig(json: config), seed: 3)
        var weights = base.stateDict()
        weights["cls.predictions.bias"] = Tensor.zeros([17])  // a pre-training head, ignored
        try HFModelFolder.write(config: config, tensors: weights, to: dir)
        let bert = try BertModel.load(from: dir)
        let ids = [[2, 5, 7]]
        XCTAssertEqual(try bert.forward(inputIDs: ids, .inference()).pooled!.value,
                       try base.forward(inputIDs: ids, .inference()).pooled!.value)
        let (classifier, newHead) = try BertForSequenceClassification.load(from: dir)
        XCTAssertTrue(newHead)
        XCTAssertEqual(try classifier.forward(inputIDs: ids, .inference()).shape, [1, 3])
        XCTAssertEqual((classifier.module(at: "bert.pooler.dense") as! Linear).weight.value,
                       (base.module(at: "pooler.dense") as! Linear).weight.value)
    }
}
