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
        let (classifier, newHead, _) = try BertForSequenceClassification.load(from: dir)
        XCTAssertTrue(newHead)
        XCTAssertEqual(try classifier.forward(inputIDs: ids, .inference()).shape, [1, 3])
        XCTAssertEqual((classifier.module(at: "bert.pooler.dense") as! Linear).weight.value,
                       (base.module(at: "pooler.dense") as! Linear).weight.value)
    }

    /// Checkpoints as published: the quirks of real BERT folders, each built here in a tiny checkpoint.
    func testPublishedCheckpointQuirks() throws {
        let config: JSONValue = ["model_type": "bert", "vocab_size": 17, "hidden_size": 8, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 10]
        let base = try BertModel(config: try BertConfig(json: config), seed: 5)
        let ids = [[2, 5, 7, 1]]
        let expected = try base.forward(inputIDs: ids, .inference())
        func write(_ dir: URL, _ tensors: [String: Tensor], ints: [String: ([Int], [Int])] = [:], dtype: SafetensorsDType = .F32) throws {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var entries = try tensors.mapValues { try SafetensorsEntry.float($0, as: dtype) }
            for (k, (v, shape)) in ints { entries[k] = try SafetensorsEntry.int(v, shape: shape) }
            try Safetensors.write(entries: entries, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors"))
            try AtomicFile.write(config.pythonStyleString(indent: 2), to: dir.appendingPathComponent("config.json"))
        }
        let weights = base.stateDict()
        let positions = ([Int](0..<10), [1, 10])
        // 1. Integer buffers (as sentence-transformers' all-MiniLM-L6-v2 ships them), a pre-training head whose
        //    decoder is tied to the word embeddings, the `bert.` prefix.
        var prefixed: [String: Tensor] = [:]
        for (k, t) in weights { prefixed["bert." + k] = t }
        prefixed["cls.predictions.decoder.weight"] = weights["embeddings.word_embeddings.weight"]
        let dir1 = temporaryDirectory()
        try write(dir1, prefixed, ints: ["bert.embeddings.position_ids": positions,
                                         "bert.embeddings.token_type_ids": ([Int](repeating: 0, count: 10), [1, 10])])
        XCTAssertEqual(try BertModel.load(from: dir1).forward(inputIDs: ids, .inference()).pooled!.value, expected.pooled!.value)
        // 2. F16 and BF16 weights load as the exact conversions of the stored values.
        for dtype in [SafetensorsDType.F16, .BF16] {
            let dir = temporaryDirectory()
            try write(dir, weights, ints: ["embeddings.position_ids": positions], dtype: dtype)
            let loaded = try BertModel.load(from: dir)
            let w = try SafetensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors")).tensor("pooler.dense.weight")
            XCTAssertEqual((loaded.module(at: "pooler.dense") as! Linear).weight.value, w, "\(dtype)")
            XCTAssertNotEqual(w, weights["pooler.dense.weight"]!, "\(dtype) rounds")
        }
        // 3. Sharded, and without a pooler: a model without one (nil) or an error naming the key (true).
        let dir3 = temporaryDirectory()
        try HFModelFolder.write(config: config, tensors: weights.filter { !$0.key.hasPrefix("pooler.") }, to: dir3, maxShardBytes: 400)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir3.appendingPathComponent("model.safetensors.index.json").path))
        let noPooler = try BertModel.load(from: dir3)
        XCTAssertNil(try noPooler.forward(inputIDs: ids, .inference()).pooled)
        XCTAssertEqual(try noPooler.forward(inputIDs: ids, .inference()).sequence.value, expected.sequence.value)
        XCTAssertThrowsError(try BertModel.load(from: dir3, addPoolingLayer: true)) { e in
            XCTAssertTrue("\(e)".contains("missing tensor 'pooler.dense.weight'"), "\(e)")
        }
        XCTAssertTrue(try BertForSequenceClassification.load(from: dir3).newHead)
        // A head or pooler given in part is an error, not a fresh bias beside a loaded weight.
        let dir5 = temporaryDirectory()
        var partial = weights.filter { $0.key != "pooler.dense.bias" }
        partial["classifier.weight"] = Tensor.zeros([2, 8])
        var withLabels = config.objectValue!
        withLabels["num_labels"] = 2
        try HFModelFolder.write(config: .object(withLabels), tensors: partial, to: dir5)
        XCTAssertThrowsError(try BertForSequenceClassification.load(from: dir5)) { e in
            XCTAssertTrue("\(e)".contains("missing tensor 'bert.pooler.dense.bias'") && "\(e)".contains("missing tensor 'classifier.bias'"), "\(e)")
        }
        // 4. Surprises, each named: a buffer that is not what the model computes, an integer weight, an unknown key.
        let surprises: [(String, [String: Tensor], [String: ([Int], [Int])])] = [
            ("buffer 'embeddings.position_ids' holds 5 at position 3", weights, ["embeddings.position_ids": ([0, 1, 2, 5], [1, 4])]),
            ("buffer 'embeddings.position_ids' has shape [1, 11]", weights, ["embeddings.position_ids": ([Int](0..<11), [1, 11])]),
            ("buffer 'embeddings.token_type_ids' holds token type 2", weights, ["embeddings.token_type_ids": ([0, 2], [1, 2])]),
            ("tensor \"embeddings.word_ids\" is I64, an integer dtype", weights, ["embeddings.word_ids": ([1], [1])]),
            ("unexpected tensor 'encoder.layer.0.extra'", weights.merging(["encoder.layer.0.extra": Tensor.zeros([2])]) { a, _ in a }, [:]),
        ]
        for (message, tensors, ints) in surprises {
            let dir = temporaryDirectory()
            try write(dir, tensors, ints: ints)
            XCTAssertThrowsError(try BertModel.load(from: dir)) { e in XCTAssertTrue("\(e)".contains(message), "\(e)") }
        }
    }
}
