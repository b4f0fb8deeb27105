import Foundation
import XCTest
import PolyPEFT

/// The README's library example, verbatim but for the output folder, so the documentation keeps compiling.
final class ReadmeExampleTests: XCTestCase {
    func testReadmeExample() throws {
        var rng = Xoshiro256(seed: 0)
        let base = try MLP([.linear(name: "fc1", inFeatures: 32, outFeatures: 64, bias: true), .activation(.relu),
                            .linear(name: "fc2", inFeatures: 64, outFeatures: 8, bias: true)], using: &rng)
        let config = PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: 18, nSkills: 6, nSplits: 1)
        let peft = try PeftModel(wrapping: base, config: config, using: &rng)
        XCTAssertEqual(peft.parameterSummary(), "trainable params: 2,232 || all params: 4,864 || trainable%: 45.8882")

        let x = Tensor.normal([4, 32], using: &rng)
        let ctx = Context(mode: .train, taskIDs: [0, 3, 3, 17], rng: rng)
        let loss = try Loss.mse(try base(Variable(x), ctx), Tensor.zeros([4, 8]))
        try loss.backward()
        XCTAssertNotNil(peft.adapterParameters().first { $0.key.hasSuffix("fc1.poly_lora_A") }?.parameter.grad)
        XCTAssertNil(base.child("fc1")?.child("base_layer").map { ($0 as! Linear).weight.grad } ?? nil)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let routing = try peft.routing()
        XCTAssertEqual(routing.map(\.weights.shape), [[18, 1, 6], [18, 1, 6]])
    }

    /// The README's real-model example, verbatim but for the folder: a tiny BERT written as a published folder
    /// (an I64 position_ids buffer included) with the test tokenizer.
    func testReadmeRealModelExample() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("readme-bert-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenizerFile = Bundle.module.url(forResource: "tokenizers", withExtension: nil)!.appendingPathComponent("wordpiece_uncased.json")
        let vocab = try Tokenizer(contentsOf: tokenizerFile).model.tokens.count
        let configJSON: JSONValue = ["model_type": "bert", "vocab_size": .int(vocab), "hidden_size": 16, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32]
        var weights = try BertModel(config: try BertConfig(json: configJSON), seed: 1).stateDict().mapValues { try SafetensorsEntry.float($0) }
        weights["embeddings.position_ids"] = try SafetensorsEntry.int(Array(0..<32), shape: [1, 32])
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Safetensors.write(entries: weights, to: dir.appendingPathComponent("model.safetensors"))
        try AtomicFile.write(configJSON.pythonStyleString(indent: 2), to: dir.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: tokenizerFile, to: dir.appendingPathComponent("tokenizer.json"))

        let folder = dir
        var tokenizer = try Tokenizer(contentsOf: folder)                        // the tokenizers library's ids, exactly
        tokenizer.padding = Tokenizer.Padding()                                  // pad each batch to its longest text
        let bert = try BertModel.load(from: folder)                              // buffers, F16/BF16, shards, tied names
        var seed = Xoshiro256(seed: 0)
        let poly = PolyConfig(r: 2, targetModules: .names(["query", "value"]), nTasks: 4, nSkills: 4)
        let adapted = try PeftModel(wrapping: bert, config: poly, using: &seed)
        let batch = try tokenizer.encodeBatch(["A first text.", "Another one, for task 3."])
        let (hidden, _) = try bert.forward(inputIDs: batch.map(\.ids), attentionMask: batch.map(\.attentionMask),
                                           tokenTypeIDs: batch.map(\.typeIDs), Context.inference(taskIDs: [0, 3]))
        XCTAssertEqual(hidden.shape, [2, batch[0].count, 16])
        XCTAssertEqual(batch[0].count, batch[1].count)
        XCTAssertTrue(adapted.parameterSummary().hasPrefix("trainable params: "))
    }
}
