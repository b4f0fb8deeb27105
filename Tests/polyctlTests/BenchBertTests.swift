import XCTest
import PolyPEFT
@testable import polyctl

/// `polyctl bench bert` run in-process on a tiny BERT folder: figures, a dump that rebuilds the adapted model, errors.
final class BenchBertTests: CLITestCase {
    func testTinyModelRunAndDump() throws {
        let dir = root.appendingPathComponent("bert")
        let config: JSONValue = ["model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 8]
        let bert = try BertModel(config: try BertConfig(json: config), seed: 2)
        try HFModelFolder.write(config: config, tensors: bert.stateDict(), to: dir)
        let dump = root.appendingPathComponent("dump.safetensors")
        let r = run(["bench", "bert", "--model", dir.path, "--batch", "3", "--seq", "5", "--splits", "2", "--repeat", "1",
                     "--threads", "1", "--json", "--dump", dump.path])
        XCTAssertEqual(r.code, 0, r.err)
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        for f in ["mixed_infer_minor_faults", "train_step_minor_faults"] {
            XCTAssertGreaterThanOrEqual(json[f] as? Double ?? -1, 0, f)
        }
        for f in ["mixed_infer_ms", "single_infer_ms", "train_step_ms", "merged_infer_ms"] {
            XCTAssertGreaterThan(json[f] as? Double ?? 0, 0, f)
        }
        XCTAssertEqual(json["hidden"] as? Int, 16)
        XCTAssertEqual(json["splits"] as? Int, 2)
        // The dump's weights and adapter rebuild a model whose mixed-task output is the dumped one.
        var t = try Safetensors.read(dump)
        let ids = t["input_ids"]!.scalars.map(Int.init).chunked(5), tasks = t["task_ids"]!.scalars.map(Int.init)
        XCTAssertEqual(tasks, [0, 1, 2])
        let expected = t["mixed_out"]!
        XCTAssertEqual(expected.shape, [2, 5, 16])
        let adapter = t.filter { $0.key.hasPrefix(PeftModel.keyPrefix) }
        XCTAssertEqual(adapter.count, 2 * 3, "query and value: A, B, router logits")
        for k in ["input_ids", "task_ids", "mixed_out"] + Array(adapter.keys) { t[k] = nil }
        let model = try BertModel(config: try BertConfig(json: config), addPoolingLayer: false)
        try model.loadStateDict(t, source: "dump")
        var g = Xoshiro256(seed: 0)
        let peft = try PeftModel(wrapping: model, config: PolyConfig(r: 8, targetModules: .names(["query", "value"]), nTasks: 4,
                                                                      nSkills: 8, nSplits: 2, initWeights: false, mixing: .parameters), using: &g)
        try peft.loadAdapterTensors(adapter)
        let out = try model.forward(inputIDs: Array(ids.prefix(2)), attentionMask: [[Int]](repeating: [1, 1, 1, 1, 1], count: 2),
                                    Context.inference(taskIDs: [0, 1])).sequence.value
        for (a, b) in zip(out.scalars, expected.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }

        XCTAssertEqual(run(["bench", "bert", "--model", dir.path, "--seq", "9", "--repeat", "1"]).err,
                       "error: --seq 9 is more than the model's 8 positions\n")
    }
}
