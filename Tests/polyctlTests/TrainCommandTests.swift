import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

final class TrainCommandTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("polyctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func run(_ args: [String]) -> (code: Int32, out: String, err: String) {
        let c = Console(passthrough: false)
        let code = PolyCtl.run(args, console: c)
        return (code, c.stdout, c.stderr)
    }

    let tiny = ["--steps", "30", "--eval-every", "10", "--batch-size", "64", "--no-baseline", "--quiet"]

    func testTrainInspectEvalInferRoundTrip() throws {
        let dir = root.appendingPathComponent("a").path
        let t = run(["train"] + tiny + ["--output", dir])
        XCTAssertEqual(t.code, 0, t.err)
        XCTAssertTrue(t.out.contains("Learned allocation of fc1 (task x skill, eval-mode routing):"), t.out)
        XCTAssertTrue(t.out.contains("Recovery of the true allocation: "))
        for f in ["adapter_config.json", "adapter_model.safetensors", "allocation.svg", "loss.svg", "polypeft_run.json",
                  "base_model.safetensors", "checkpoint/trainer_state.json", "checkpoint/optimizer.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f)
        }
        let i = run(["inspect", dir])
        XCTAssertEqual(i.code, 0, i.err)
        XCTAssertTrue(i.out.contains("Type: Poly  r=2  tasks=18  skills=6  splits=1  mixing=outputs\nTargets: [\"fc1\", \"fc2\"]\nAdapter parameters: 2,232 in 6 tensors\n"), i.out)
        XCTAssertTrue(i.out.contains("Routing of fc2 (task x skill, averaged over 1 split):\n        s0 s1 s2 s3 s4 s5\ntask00 "))
        let e = run(["eval", "--adapter", dir, "--json"])
        XCTAssertEqual(e.code, 0, e.err)
        let json = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
        XCTAssertEqual((json["tasks"] as! [Any]).count, 18)
        XCTAssertEqual(json["samples"] as? Int, 18 * 128)
        let few = json["few_shot"] as! [String: Any]
        XCTAssertEqual(few["shots"] as? Int, 20)
        XCTAssertEqual((few["tasks"] as! [[String: Any]]).map { $0["task"] as! String }, ["heldout0", "heldout1", "heldout2", "heldout3"])
        let input = root.appendingPathComponent("in.jsonl")
        try Data((String(repeating: "{\"input\": [" + Array(repeating: "0.5", count: 32).joined(separator: ", ") + "]}\n", count: 3)).utf8).write(to: input)
        let inf = run(["infer", "--adapter", dir, "--task", "task03", "--input", input.path])
        XCTAssertEqual(inf.code, 0, inf.err)
        let lines = inf.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[0].hasPrefix("{\"output\":["))
        XCTAssertEqual(lines[0], lines[2])
        let bad = run(["infer", "--adapter", dir, "--task", "nope", "--input", input.path])
        XCTAssertEqual(bad.code, 1)
        XCTAssertEqual(bad.err, "error: unknown task 'nope' (this adapter knows: task00, task01, task02, task03, task04, task05, task06, task07, ...); '--unknown-task uniform' routes it uniformly\n")
        let uniform = run(["infer", "--adapter", dir, "--task", "nope", "--unknown-task", "uniform", "--input", input.path])
        XCTAssertEqual(uniform.code, 0, uniform.err)
        XCTAssertEqual(uniform.out.split(separator: "\n").count, 3)
        XCTAssertNotEqual(uniform.out, inf.out)
    }

    /// An interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one.
    func testResumeIsBitIdentical() throws {
        let a = root.appendingPathComponent("a").path, b = root.appendingPathComponent("b").path
        XCTAssertEqual(run(["train"] + tiny + ["--output", a]).code, 0)
        let stopped = run(["train"] + tiny + ["--output", b, "--stop-after", "12"])
        XCTAssertEqual(stopped.code, 130)
        XCTAssertTrue(stopped.out.contains("Interrupted at step 12: checkpoint saved; continue with 'polyctl train --resume \(b)'"), stopped.out)
        let resumed = run(["train", "--resume", b, "--quiet", "--no-baseline"])
        XCTAssertEqual(resumed.code, 0, resumed.err)
        for f in ["adapter_model.safetensors", "checkpoint/optimizer.safetensors"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a + "/" + f)), try Data(contentsOf: URL(fileURLWithPath: b + "/" + f)), f)
        }
        let conflict = run(["train", "--resume", b, "--steps", "5"])
        XCTAssertEqual(conflict.code, 64)
        XCTAssertEqual(conflict.err, "error: '--steps' cannot be combined with '--resume' (the run's saved settings are used)\nhint: see 'polyctl train --help'\n")
    }

    func testUsageAndRuntimeErrors() {
        let cases: [([String], Int32, String)] = [
            (["train", "--bogus"], 64, "error: unknown option '--bogus'\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "x"], 64, "error: option '--method' must be one of poly, mhr, lora, got 'x'\nhint: see 'polyctl train --help'\n"),
            (["train", "--steps", "0"], 64, "error: option '--steps' must be in 1...10000000, got 0\nhint: see 'polyctl train --help'\n"),
            (["train", "--lr", "-1"], 64, "error: option '--lr' expects a positive number, got '-1'\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "lora", "--skills", "3"], 64, "error: '--skills' and '--splits' apply to poly and mhr, not lora\nhint: see 'polyctl train --help'\n"),
            (["train", "--resume", "/nonexistent/run"], 1, "error: /nonexistent/run is not a polyctl run folder (no polypeft_run.json)\n"),
            (["train", "--data", "/nonexistent/d.jsonl"], 1, ""),
            (["inspect"], 64, "error: missing the adapter folder\nhint: see 'polyctl inspect --help'\n"),
            (["inspect", "/nonexistent"], 1, "error: /nonexistent: adapter folder does not exist\n"),
            (["eval"], 64, "error: missing '--adapter <dir>'\nhint: see 'polyctl eval --help'\n"),
        ]
        for (args, code, err) in cases {
            let r = run(args)
            XCTAssertEqual(r.code, code, args.joined(separator: " "))
            if !err.isEmpty { XCTAssertEqual(r.err, err, args.joined(separator: " ")) } else { XCTAssertTrue(r.err.hasPrefix("error: "), r.err) }
        }
    }

    func testInspectReadsPEFTWrittenAdapter() throws {
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PolyPEFTTests/Resources/golden/mhr_k4_s2_r2/adapter").path
        let r = run(["inspect", golden, "--numbers"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("Type: Poly / MHR  r=2  tasks=3  skills=4  splits=2  mixing=parameters"), r.out)
        XCTAssertTrue(r.out.contains("Routing of fc1 (task x skill, averaged over 2 splits):\n         s0   s1   s2   s3\ntask0 "), r.out)
    }

    /// PEFT-written IA3 and DoRA folders: one summary line each, exactly.
    func testInspectReadsPEFTWrittenIA3AndDoRA() throws {
        let methods = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PolyPEFTTests/Resources/golden_methods")
        for (name, type, size) in [("ia3_mlp", "IA3  feedforward=[\"fc2\"]", "64 in 2 tensors"),
                                   ("dora_mlp", "DoRA  r=2  lora_alpha=4.00  dropout=0.00", "216 in 6 tensors")] {
            let dir = methods.appendingPathComponent("\(name)/adapter").path
            let r = run(["inspect", dir])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertEqual(r.out, "Adapter: \(dir)\nType: \(type)\nTargets: [\"fc1\", \"fc2\"]\nAdapter parameters: \(size)\n", name)
        }
    }

    /// The routing shown follows the config's `polypeft_routing` options: with straight-through and a shared skill,
    /// every task's weights are a hard 0/1 choice normalised (the shared last skill always on), not PEFT's soft
    /// sigmoids, and equal what the library's router computes.
    func testInspectFollowsRoutingOptions() throws {
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PolyPEFTTests/Resources/golden/mhr_k4_s2_r2/adapter")
        let dir = root.appendingPathComponent("hard")
        try FileManager.default.copyItem(at: golden, to: dir)
        let configURL = dir.appendingPathComponent("adapter_config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["polypeft_routing"] = ["straight_through": true, "shared_skill": true]
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let r = run(["inspect", dir.path, "--json"])
        XCTAssertEqual(r.code, 0, r.err)
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let shown = (json["routing"] as! [String: Any])["fc1"] as! [[Double]]          // [task][skill], split mean
        let (_, tensors) = try PeftAdapterFolder.read(from: dir)
        var rng = Xoshiro256(seed: 1)
        let router = PolyRouter(nTasks: 3, nSkills: 4, nSplits: 2, using: &rng)
        router.options = RoutingOptions(straightThrough: true, sharedSkill: true)
        router.moduleLogits.value = tensors["base_model.model.fc1.poly_router.module_logits"]!
        let want = try router.allocation().mean(axes: [1]).scalars                         // [3, 4]
        for t in 0..<3 {
            XCTAssertGreaterThan(shown[t][3], 0, "the shared skill is on for task \(t)")
            for k in 0..<4 {
                XCTAssertEqual(shown[t][k], Double(want[t * 4 + k]), accuracy: 1e-6)
                // Hard weights: each split's weights are 0 or 1/n, so their mean over two splits is a multiple of 1/24.
                XCTAssertEqual((shown[t][k] * 24).rounded() / 24, shown[t][k], accuracy: 1e-6)
            }
        }
        XCTAssertTrue(r.out.contains("\"straight_through\": true"), r.out)
    }

    func testTrainHelpIsExact() {
        let r = run(["train", "--help"])
        XCTAssertEqual(r.code, 0)
        XCTAssertEqual(r.out, """
        OVERVIEW: Train Poly / MHR / LoRA adapters on multitask data (built-in by default).

        USAGE: polyctl train [--method poly|mhr|lora] [--steps <n>] [--output <dir>] [options]

        OPTIONS:
          --method <poly|mhr|lora>       Adapter: Poly, MHR (Poly with splits) or one shared LoRA. (default: poly)
          --skills <n>                   Skills (LoRAs) per adapted layer. (default: 6)
          --splits <n>                   Routing blocks per skill (MHR heads). (default: 1 for poly, 4 for mhr)
          --rank <n>                     LoRA rank of each skill. (default: 2)
          --mixing <parameters|outputs>  Mix skill parameters (PEFT) or skill outputs. (default: outputs)
          --steps <n>                    Optimizer steps. (default: 2000)
          --batch-size <n>               Samples per step. (default: 256)
          --lr <x>                       Learning rate of the skills. (default: 0.01)
          --router-lr <x>                Learning rate of the router logits. (default: 0.1)
          --eval-every <n>               Validation interval in steps (0: only at the end). (default: 250)
          --seed <n>                     Seed of the data, the initialisation and the batch order. (default: 0)
          --data <file>                  Your multitask data (.jsonl or .csv) instead of the built-in tasks.
          --output <dir>                 Run folder. (default: runs/<timestamp>)
          --resume <dir>                 Continue an interrupted run in <dir> (its settings are reused).
          --stop-after <n>               Stop after n steps as if interrupted (checkpoint, exit 130); for testing resume.
          --no-baseline                  Skip training the shared-LoRA baseline of the same size.
          --quiet                        Print only the summary, no progress.
          --json                         Print progress and the summary as JSON lines.
          --help                         Show help information.

        """)
    }
}

final class ExportCommandTests: XCTestCase {
    func testExportEveryTaskAndMerged() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let run = root.appendingPathComponent("run").path
        func polyctl(_ args: [String]) -> (Int32, String, String) {
            let c = Console(passthrough: false)
            return (PolyCtl.run(args, console: c), c.stdout, c.stderr)
        }
        XCTAssertEqual(polyctl(["train", "--steps", "20", "--no-baseline", "--quiet", "--output", run]).0, 0)
        let (code, out, err) = polyctl(["export", "--adapter", run, "--output", root.appendingPathComponent("loras").path])
        XCTAssertEqual(code, 0, err)
        XCTAssertEqual(out, "Wrote 18 LoRA adapters (PEFT format) into \(root.path)/loras/<task>/\n")
        let config = try String(contentsOf: root.appendingPathComponent("loras/task07/adapter_config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains("\"peft_type\": \"LORA\""), config)
        XCTAssertTrue(config.contains("\"r\": 12"), config)                    // output mixing: K * r
        let merged = polyctl(["export", "--adapter", run, "--task", "task02", "--merged", "--output", root.appendingPathComponent("m").path])
        XCTAssertEqual(merged.0, 0, merged.2)
        let weights = try Safetensors.read(root.appendingPathComponent("m/model.safetensors"))
        XCTAssertEqual(weights.keys.sorted(), ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"])
        XCTAssertEqual(polyctl(["export", "--adapter", run, "--merged", "--output", "x"]).2,
                       "error: '--merged' needs '--task <name>'\nhint: see 'polyctl export --help'\n")
        XCTAssertEqual(polyctl(["export", "--adapter", run, "--task", "zz", "--output", "x"]).0, 1)
    }
}
