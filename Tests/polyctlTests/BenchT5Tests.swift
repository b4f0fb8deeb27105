import XCTest
import PolyPEFT
@testable import polyctl

/// `polyctl bench t5` run in-process on a tiny T5: exact help, usage errors, and a dump that rebuilds the same model.
final class BenchT5Tests: XCTestCase {
    private func run(_ args: [String]) -> (code: Int32, console: Console) {
        let c = Console(passthrough: false)
        return (PolyCtl.run(args, console: c), c)
    }

    private static let tiny = ["--batch", "2", "--seq", "5", "--layers", "1", "--d-model", "16", "--d-ff", "24",
                               "--heads", "2", "--vocab", "40", "--repeat", "1", "--threads", "1"]

    /// The dump loads into a fresh model by HF names (the tied embedding from `shared.weight` alone) and PEFT keys, and
    /// that model reproduces the reported evaluation loss and logits exactly; the random-B adapter changes the output.
    func testTinyRunDumpRebuildsTheModel() throws {
        let dump = FileManager.default.temporaryDirectory.appendingPathComponent("bench-t5-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: dump) }
        let (code, c) = run(["bench", "t5"] + Self.tiny + ["--dump", dump.path])
        XCTAssertEqual(code, 0, c.stderr)
        let lines = c.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "model:   T5 1+1 layers, d_model 16, d_ff 24, 2 heads, vocab 40; MHR on q and v (r 8, 8 skills, 8 splits, 4 tasks)")
        XCTAssertTrue(lines.last?.hasPrefix("train_step_ms=") ?? false, c.stdout)
        XCTAssertGreaterThan(Double(lines.last?.dropFirst(14) ?? "") ?? 0, 0, c.stdout)
        let reported = try XCTUnwrap(Double(lines[lines.count - 2].dropFirst("eval_loss=".count)), c.stdout)

        var t = try Safetensors.read(dump)
        XCTAssertEqual(t["logits_positions"]?.scalars, [0, 1, 2, 4])
        XCTAssertEqual(t["logits_slice"]?.shape, [2, 4, 40])
        XCTAssertEqual(t["task_ids"]?.scalars, [0, 1])
        XCTAssertNotNil(t["shared.weight"])
        XCTAssertNil(t["lm_head.weight"])                                       // tied: dumped once
        let adapterKeys = t.keys.filter { $0.hasPrefix(PeftModel.keyPrefix) }
        XCTAssertEqual(adapterKeys.count, 6 * 3)                                // enc q, v; dec self q, v; cross q, v
        XCTAssertEqual(t["base_model.model.decoder.block.0.layer.1.EncDecAttention.v.poly_lora_A"]?.shape, [8, 8, 2, 8])
        let ids = { (k: String) in t[k]!.scalars.map(Int.init).chunked(5) }
        let source = ids("input_ids"), labels = ids("labels")
        let evalLoss = t["eval_loss"]!.scalars[0], slice = t["logits_slice"]!.scalars
        for k in ["input_ids", "labels", "task_ids", "eval_loss", "logits_positions", "logits_slice"] { t[k] = nil }

        let config = T5Config(vocabSize: 40, dModel: 16, dKV: 8, dFF: 24, numLayers: 1, numHeads: 2, dropoutRate: 0.1)
        let model = try T5ForConditionalGeneration(config: config, seed: 99)
        try model.loadStateDict(t.filter { !$0.key.hasPrefix(PeftModel.keyPrefix) })
        var rng = Xoshiro256(seed: 5)
        let peft = try PeftModel(wrapping: model, config: (PolyConfig(r: 8, targetModules: .names(["q", "v"]), nTasks: 4,
                                                                           nSkills: 8, nSplits: 8, initWeights: false)), using: &rng)
        try peft.loadAdapterTensors(t.filter { $0.key.hasPrefix(PeftModel.keyPrefix) })
        let ctx = Context.inference(taskIDs: [0, 1])
        let logits = try model.forward(inputIDs: source, attentionMask: nil, decoderInputIDs: try model.shiftRight(labels), ctx)
        let loss = try Loss.crossEntropy(logits, targets: labels.flatMap { $0 }).value.scalars[0]
        XCTAssertEqual(loss, evalLoss)
        XCTAssertEqual(Double(loss), reported, accuracy: 1e-5)
        XCTAssertEqual(try logits.value.indexSelect(axis: 1, [0, 1, 2, 4]).scalars, slice)
        ctx.adaptersEnabled = false
        let baseLoss = try model.loss(inputIDs: source, attentionMask: nil, labels: labels, ctx).value.scalars[0]
        XCTAssertGreaterThan(abs(baseLoss - loss), 1e-4)
    }

    func testTinyJSON() {
        let (code, c) = run(["bench", "t5"] + Self.tiny + ["--json"])
        XCTAssertEqual(code, 0, c.stderr)
        let first = c.stdout.split(separator: "\n").first ?? ""
        XCTAssertTrue(first.hasPrefix("{\"batch\": 2, \"seq\": 5, \"layers\": 1, \"d_model\": 16, \"d_ff\": 24, \"heads\": 2, \"vocab\": 40, \"r\": 8, \"skills\": 8, \"splits\": 8, \"tasks\": 4, \"threads\": 1, \"repeat\": 1, \"train_step_ms\": "), c.stdout)
        XCTAssertTrue(first.contains("\"eval_forward_ms\": "), c.stdout)
        XCTAssertTrue(first.contains("\"eval_loss\": "), c.stdout)
    }

    func testBadFlagsAreUsageErrors() {
        let hint = "hint: see 'polyctl bench t5 --help'\n"
        let cases: [([String], String)] = [
            (["bench", "t5", "--d-model", "24", "--heads", "5"],
             "error: --d-model 24 must be divisible by --heads 5 and by the 8 splits\n" + hint),
            (["bench", "t5", "--d-model", "12", "--heads", "2"],
             "error: --d-model 12 must be divisible by --heads 2 and by the 8 splits\n" + hint),
            (["bench", "t5", "--batch", "4096", "--seq", "4096"],
             "error: the logits would have 539018395648 elements; the limit is 268435456\n" + hint),
            (["bench", "t5", "--seq", "0"], "error: option '--seq' must be in 1...65536, got 0\n" + hint),
            (["bench", "t5", "--dump", ""], "error: option '--dump' needs a file path\n" + hint),
            (["bench", "t5", "--mixing", "outputs"], "error: unknown option '--mixing'\n" + hint),
        ]
        for (args, message) in cases {
            let (code, c) = run(args)
            XCTAssertEqual(code, 64, "\(args)")
            XCTAssertEqual(c.stderr, message)
        }
    }

    func testHelpText() {
        XCTAssertEqual(run(["bench", "t5", "--help"]).console.stdout, """
            OVERVIEW: Time a Poly/MHR training step of a T5-small-sized model with q and v adapters.

            USAGE: polyctl bench t5 [--batch <n>] [--seq <n>] [--layers <n>] [--threads <t>] [--repeat <r>] [--json] [--dump <file>]

            OPTIONS:
              --batch <n>    Sequences per step. (default: 8)
              --seq <n>      Tokens per source and per target sequence. (default: 128)
              --layers <n>   Encoder layers and decoder layers. (default: 6)
              --d-model <n>  Model width (a multiple of 8 and of --heads). (default: 512)
              --d-ff <n>     Feed-forward width. (default: 2048)
              --heads <n>    Attention heads (d_kv = d_model / heads). (default: 8)
              --vocab <n>    Vocabulary size. (default: 32128)
              --threads <t>  Threads to use. (default: all processors or POLYPEFT_THREADS)
              --repeat <r>   Timed rounds (each times every figure once) after one warm-up; the best is kept. (default: 2)
              --seed <n>     Seed of weights, adapters and data. (default: 0)
              --dump <file>  Write weights, adapter, data and evaluation outputs to a safetensors file.
              --json         Print the figures as one JSON object.
              --help         Show help information.

            """)
        XCTAssertTrue(run(["bench", "--help"]).console.stdout.contains("  t5      Time a Poly/MHR training step"))
    }
}

extension Array {
    /// Consecutive rows of `n` elements.
    func chunked(_ n: Int) -> [[Element]] { stride(from: 0, to: count, by: n).map { Array(self[$0..<Swift.min($0 + n, count)]) } }
}
