import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

final class TrainCommandTests: CLITestCase {

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
        // CRLF files read as LF ones; values beyond Float's range and non-finite outputs are errors, never non-JSON.
        func inputs(_ value: String, _ name: String, eol: String = "\n") throws -> String {
            let url = root.appendingPathComponent(name)
            try Data((String(repeating: "{\"input\": [" + Array(repeating: value, count: 32).joined(separator: ", ") + "]}" + eol, count: 3)).utf8).write(to: url)
            return url.path
        }
        let crlf = run(["infer", "--adapter", dir, "--task", "task03", "--input", try inputs("0.5", "crlf.jsonl", eol: "\r\n")])
        XCTAssertEqual(crlf.out, inf.out, crlf.err)
        let huge = try inputs("1e39", "huge.jsonl")
        XCTAssertEqual(run(["infer", "--adapter", dir, "--task", "task03", "--input", huge]).err,
                       "error: \(huge):1: \"input\" holds 1e+39, which is not a finite 32-bit float\n")
        let overflow = run(["infer", "--adapter", dir, "--task", "task03", "--input", try inputs("3e38", "big.jsonl")])
        XCTAssertEqual(overflow.code, 1)
        XCTAssertTrue(overflow.err.hasPrefix("error: the output of input 1 is not finite ("), overflow.err)
        XCTAssertEqual(overflow.out, "")
        // inspect checks the router logits against the config (no rows, wrong task count) instead of crashing.
        for rows in [0, 3] {
            let folder = root.appendingPathComponent("logits\(rows)")
            try PeftAdapterFolder.write(config: PolyConfig(r: 2, targetModules: .names(["fc1"]), nTasks: 2, nSkills: 3).json,
                                        tensors: ["base_model.model.fc1.poly_router.module_logits": Tensor.zeros([rows, 3])], to: folder)
            let bad = run(["inspect", folder.path])
            XCTAssertEqual(bad.code, 1)
            XCTAssertEqual(bad.err, "error: router logits [\(rows), 3] do not match n_tasks 2 x (n_splits 1 x n_skills 3)\n")
        }
        // An adapter config that no longer says what polypeft_run.json says is an error naming the key.
        let configURL = URL(fileURLWithPath: dir).appendingPathComponent("adapter_config.json")
        var config = try JSONValue(parsing: try Data(contentsOf: configURL)).objectValue!
        config["polypeft_mixing"] = nil
        try Data(JSONValue.object(config).pythonStyleString(indent: 2, sortKeys: true).utf8).write(to: configURL)
        let edited = run(["eval", "--adapter", dir])
        XCTAssertEqual(edited.code, 1)
        XCTAssertEqual(edited.err, "error: \(configURL.path): polypeft_mixing is absent, but polypeft_run.json says \"outputs\" "
            + "(the folder was edited or holds files of two runs)\n")
    }

    /// IA3 and DoRA, one adapter shared by all tasks: trained a few steps, saved in PEFT's format (keys, shapes,
    /// config), and reopened by infer (checked against the method's formula on the saved tensors), eval and inspect.
    func testTrainIA3AndDoRA() throws {
        let p = PeftModel.keyPrefix
        let cases: [(method: [String], shapes: [String: [Int]], type: String, size: String)] = [
            (["--method", "ia3"], [p + "fc1.ia3_l": [64, 1], p + "fc2.ia3_l": [1, 64]], "IA3  feedforward=[\"fc2\"]", "128 in 2 tensors"),
            (["--method", "ia3", "--feedforward", "none"], [p + "fc1.ia3_l": [64, 1], p + "fc2.ia3_l": [8, 1]], "IA3  feedforward=[]",
             "72 in 2 tensors"),
            (["--method", "dora"], [p + "fc1.lora_A.weight": [2, 32], p + "fc1.lora_B.weight": [64, 2], p + "fc1.lora_magnitude_vector": [64],
                                    p + "fc2.lora_A.weight": [2, 64], p + "fc2.lora_B.weight": [8, 2], p + "fc2.lora_magnitude_vector": [8]],
             "DoRA  r=2  lora_alpha=2.00  dropout=0.00", "408 in 6 tensors"),
        ]
        let input = root.appendingPathComponent("in.jsonl")
        let x = (0..<3).map { i in (0..<32).map { j in Float(sin(Double(i * 32 + j) * 0.7)) } }
        try Data(x.map { "{\"input\": [" + $0.map { "\($0)" }.joined(separator: ", ") + "]}\n" }.joined().utf8).write(to: input)
        for (n, c) in cases.enumerated() {
            let label = c.method.joined(separator: " ")
            let dir = root.appendingPathComponent("run\(n)").path
            let t = run(["train"] + tiny + c.method + ["--output", dir])
            XCTAssertEqual(t.code, 0, t.err)
            XCTAssertTrue(t.out.hasSuffix("Wrote \(dir)/: adapter_config.json, adapter_model.safetensors (PEFT format), loss.svg, checkpoint/\n"), t.out)
            XCTAssertFalse(t.out.contains("allocation"), t.out)
            let tensors = try Safetensors.read(URL(fileURLWithPath: dir + "/adapter_model.safetensors"))
            XCTAssertEqual(tensors.mapValues(\.shape), c.shapes, label)
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as! [String: Any]
            XCTAssertEqual(Set(config["target_modules"] as! [String]), ["fc1", "fc2"], label)
            if c.method.contains("dora") {
                XCTAssertEqual(config["peft_type"] as? String, "LORA")
                XCTAssertEqual(config["use_dora"] as? Bool, true)
                XCTAssertEqual(config["r"] as? Int, 2)
                XCTAssertEqual(config["lora_alpha"] as? Int, 2)
                XCTAssertTrue(tensors[p + "fc2.lora_B.weight"]!.scalars.contains { $0 != 0 }, "lora_B trained away from its zero init")
            } else {
                XCTAssertEqual(config["peft_type"] as? String, "IA3")
                XCTAssertEqual(config["feedforward_modules"] as? [String], c.method.contains("none") ? [] : ["fc2"], label)
                XCTAssertEqual(config["init_ia3_weights"] as? Bool, true)
                for key in c.shapes.keys { XCTAssertTrue(tensors[key]!.scalars.contains { $0 != 1 }, "\(key) trained away from its ones init") }
            }
            // Reopened by infer; no task needed for an adapter shared by all tasks.
            let inf = run(["infer", "--adapter", dir, "--input", input.path])
            XCTAssertEqual(inf.code, 0, inf.err)
            let got = try inf.out.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: [Double]] }
            let base = try Safetensors.read(URL(fileURLWithPath: dir + "/base_model.safetensors"))
            let want = TrainCommandTests.reference(x, base: base, adapter: tensors)
            XCTAssertEqual(got.count, 3)
            for (g, w) in zip(got, want) {
                XCTAssertEqual(g["output"]!.count, 8)
                for (a, b) in zip(g["output"]!, w) { XCTAssertEqual(a, Double(b), accuracy: 1e-5, label) }
            }
            let e = run(["eval", "--adapter", dir, "--json"])
            XCTAssertEqual(e.code, 0, e.err)
            let json = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
            XCTAssertEqual((json["tasks"] as! [Any]).count, 18)
            XCTAssertNil(json["few_shot"], "few-shot adaptation is for routed runs")
            let i = run(["inspect", dir])
            XCTAssertEqual(i.code, 0, i.err)
            XCTAssertEqual(i.out, "Adapter: \(dir)\nType: \(c.type)\nTargets: [\"fc1\", \"fc2\"]\nAdapter parameters: \(c.size)\n", label)
            let ex = run(["export", "--adapter", dir, "--output", root.appendingPathComponent("x").path])
            XCTAssertEqual(ex.code, 1)
            XCTAssertEqual(ex.err, "error: \(dir): export collapses Poly / MHR tasks into LoRAs; a \(c.method.contains("dora") ? "DoRA" : "IA3") run is already one PEFT adapter\n")
        }
    }

    /// `fc2(relu(fc1(x)))` with each layer's weight and bias rewritten as the adapter in `tensors` changes them, by
    /// PEFT's formulas, in plain loops: IA3 `ia3_l` `[out, 1]` scales the rows and the bias, `[1, in]` the columns;
    /// DoRA `W' = m / ||W + s B A||_row * (W + s B A)` with `s = lora_alpha / r = 1`, bias unchanged.
    static func reference(_ x: [[Float]], base: [String: Tensor], adapter: [String: Tensor]) -> [[Float]] {
        var h = x
        for layer in ["fc1", "fc2"] {
            let w = base[layer + ".weight"]!, out = w.shape[0], inp = w.shape[1]
            var wv = w.scalars, bv = base[layer + ".bias"]!.scalars
            let key = PeftModel.keyPrefix + layer + "."
            if let l = adapter[key + "ia3_l"] {
                let lv = l.scalars
                for o in 0..<out {
                    for i in 0..<inp { wv[o * inp + i] *= l.shape[0] == 1 ? lv[i] : lv[o] }
                    if l.shape[0] != 1 { bv[o] *= lv[o] }
                }
            } else {
                let a = adapter[key + "lora_A.weight"]!.scalars, b = adapter[key + "lora_B.weight"]!.scalars
                let m = adapter[key + "lora_magnitude_vector"]!.scalars, r = a.count / inp
                for o in 0..<out {
                    for i in 0..<inp { wv[o * inp + i] += (0..<r).reduce(Float(0)) { $0 + b[o * r + $1] * a[$1 * inp + i] } }
                    let norm = (0..<inp).reduce(Float(0)) { $0 + wv[o * inp + $1] * wv[o * inp + $1] }.squareRoot()
                    for i in 0..<inp { wv[o * inp + i] *= m[o] / norm }
                }
            }
            h = h.map { row in (0..<out).map { o in
                let y = (0..<inp).reduce(bv[o]) { $0 + wv[o * inp + $1] * row[$1] }
                return layer == "fc1" ? max(y, 0) : y
            } }
        }
        return h
    }

    /// An interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one, for every method
    /// with state of its own (Poly's routers, IA3's scales, DoRA's magnitudes).
    func testResumeIsBitIdentical() throws {
        for method in ["poly", "ia3", "dora"] {
            let a = root.appendingPathComponent("a-\(method)").path, b = root.appendingPathComponent("b-\(method)").path
            let m = ["--method", method]
            XCTAssertEqual(run(["train"] + tiny + m + ["--output", a]).code, 0, method)
            let stopped = run(["train"] + tiny + m + ["--output", b, "--stop-after", "12"])
            XCTAssertEqual(stopped.code, 130, method)
            XCTAssertTrue(stopped.out.contains("Interrupted at step 12: checkpoint saved; continue with 'polyctl train --resume \(b)'"), stopped.out)
            let resumed = run(["train", "--resume", b, "--quiet", "--no-baseline"])
            XCTAssertEqual(resumed.code, 0, resumed.err)
            for f in ["adapter_model.safetensors", "checkpoint/optimizer.safetensors"] {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a + "/" + f)), try Data(contentsOf: URL(fileURLWithPath: b + "/" + f)),
                               "\(method) \(f)")
            }
        }
        let conflict = run(["train", "--resume", root.appendingPathComponent("b-poly").path, "--steps", "5"])
        XCTAssertEqual(conflict.code, 64)
        XCTAssertEqual(conflict.err, "error: '--steps' cannot be combined with '--resume' (the run's saved settings are used)\nhint: see 'polyctl train --help'\n")
    }

    func testUsageAndRuntimeErrors() {
        let cases: [([String], Int32, String)] = [
            (["train", "--bogus"], 64, "error: unknown option '--bogus'\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "x"], 64, "error: option '--method' must be one of poly, mhr, lora, ia3, dora, beft, bitfit, ssf, sparse, ln-tuning, prompt-tuning, p-tuning, prefix-tuning, seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix, mam, unipelt, got 'x'\nhint: see 'polyctl train --help'\n"),
            (["train", "--steps", "0"], 64, "error: option '--steps' must be in 1...10000000, got 0\nhint: see 'polyctl train --help'\n"),
            (["train", "--lr", "-1"], 64, "error: option '--lr' expects a positive number, got '-1'\nhint: see 'polyctl train --help'\n"),
            (["train", "--lr", "1e-50"], 64, "error: option '--lr' is out of the 32-bit float range, got '1e-50'\nhint: see 'polyctl train --help'\n"),
            (["train", "--lr", "1e39"], 64, "error: option '--lr' is out of the 32-bit float range, got '1e39'\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "lora", "--skills", "3"], 64, "error: '--skills' applies to poly and mhr, not lora\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "lora", "--mixing", "outputs"], 64, "error: '--mixing' applies to poly and mhr, not lora\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "dora", "--router-lr", "0.5"], 64, "error: '--router-lr' applies to poly, mhr, seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix, mam and unipelt, not dora\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "ia3", "--rank", "4"], 64, "error: '--rank' applies to poly, mhr, lora, dora, adapters-lora and unipelt, not ia3\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "ia3", "--splits", "2"], 64, "error: '--splits' applies to poly and mhr, not ia3\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "dora", "--feedforward", "fc1"], 64, "error: '--feedforward' applies to ia3, not dora\nhint: see 'polyctl train --help'\n"),
            (["train", "--feedforward", "none"], 64, "error: '--feedforward' applies to ia3, not poly\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "lora", "--gating"], 64, "error: '--gating' applies to seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix and mam, not lora\nhint: see 'polyctl train --help'\n"),
            (["train", "--method", "ia3", "--feedforward", "fc3"], 64, "error: option '--feedforward' must be one of fc2, fc1, both, none, got 'fc3'\nhint: see 'polyctl train --help'\n"),
            (["train", "--resume", "/nonexistent/run"], 1, "error: /nonexistent/run is not a polyctl run folder (no polypeft_run.json)\n"),
            (["train", "--data", "/nonexistent/d.jsonl"], 1, ""),
            (["train", "--output", "/dev/null"], 1, "error: --output /dev/null: exists and is not a folder\n"),
            (["train", "--output", "--help"], 64, "error: option '--output' needs a value <dir>\nhint: see 'polyctl train --help'\n"),
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
        OVERVIEW: Train Poly / MHR or another PEFT method (LoRA, IA3, DoRA, BEFT, BitFit, SSF, sparse fine-tuning, LN tuning, prompt, P- and prefix tuning, bottleneck adapters, Compacter, MAM, UniPELT) on multitask data (built-in by default).

        USAGE: polyctl train [--method <method>] [--text | --text-to-text | --model <dir> --data <file>] [--steps <n>] [--output <dir>] [options]

        OPTIONS:
          --method <method>                  Adapter: Poly, MHR (Poly with splits), or one adapter shared by all tasks (LoRA, IA3, DoRA, BEFT, BitFit, SSF, sparse; on text: LN tuning, prompt tuning, P-tuning, prefix tuning, bottleneck adapters, Compacter, the adapters library's LoRA, (IA)^3 and prefix tuning, and its unions MAM and UniPELT). One of: poly, mhr, lora, ia3, dora, beft, bitfit, ssf, sparse, ln-tuning, prompt-tuning, p-tuning, prefix-tuning, seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix, mam, unipelt. (default: poly)
          --skills <n>                       Skills (LoRAs) per adapted layer; poly, mhr only. (default: 6)
          --splits <n>                       Routing blocks per skill (MHR heads); poly, mhr only. (default: 1 for poly, 4 for mhr)
          --rank <n>                         LoRA rank (of each skill); poly, mhr, lora, dora, adapters-lora, unipelt only. (default: 2)
          --virtual-tokens <n>               Virtual tokens (prefix positions) learned; prompt-tuning, p-tuning, prefix-tuning, adapters-prefix, mam, unipelt only. (default: 3)
          --density <x>                      Fraction of the targeted weights that trains; sparse only. (default: 0.05)
          --selection <magnitude|fisher>     Train the largest |w|, or the largest Fisher information over 8 training batches (FishMask); sparse only. (default: magnitude)
          --reduction-factor <x>             Hidden size / bottleneck width; seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, mam, unipelt only. (default: the adapters library's (16; 2 for par-bn; 32 for compacter, compacter-pp), at most hidden size / 8)
          --gating                           A learned gate per sample scales the adapter (the adapters library's use_gating, UniPELT's gates); seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix, mam only.
          --task-gates                       Gates read a learned table of task logits instead of the input: each task learns which method it uses (implies --gating); seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix, mam, unipelt only.
          --mixing <parameters|outputs>      Mix skill parameters (PEFT) or skill outputs; poly, mhr only. (default: outputs)
          --feedforward <fc2|fc1|both|none>  Targets IA3 scales at the input (PEFT's feedforward_modules), not the output; ia3 only. (default: fc2)
          --steps <n>                        Optimizer steps. (default: 2000)
          --batch-size <n>                   Samples per step. (default: 256; 32 for text runs)
          --lr <x>                           Learning rate of the adapter (the skills of poly, mhr). (default: 0.01)
          --router-lr <x>                    Learning rate of the router logits; poly, mhr, seq-bn, double-seq-bn, par-bn, compacter, compacter-pp, adapters-lora, adapters-ia3, adapters-prefix, mam, unipelt only. (default: 0.1)
          --eval-every <n>                   Validation interval in steps (0: only at the end). (default: 250)
          --seed <n>                         Seed of the data, the initialisation and the batch order. (default: 0)
          --data <file>                      Your multitask data (.jsonl or .csv) instead of the built-in tasks; with --model, text (.jsonl).
          --text                             Train on the built-in text classification tasks, on a tiny BERT the command pre-trains (no files needed).
          --text-to-text                     Train on the built-in text-to-text tasks, on a tiny T5 the command pre-trains (no files needed).
          --model <dir>                      A BERT or T5 folder (config.json, model.safetensors, tokenizer.json) to adapt on --data: JSONL lines {"task", "text", "label"} (BERT) or {"task", "source", "target"} (T5).
          --targets <names>                  Modules to adapt, comma-separated; text runs only. (default: PEFT's: query,value (BERT), q,v (T5); attention and feed-forward for the built-in models)
          --max-length <n>                   Tokens per text (T5: per source), special tokens included; text runs only. (default: the tokenizer's truncation, else the model's positions or 512)
          --max-target-length <n>            Tokens per target, and per generation; text-to-text runs only. (default: 128)
          --long-texts <truncate|refuse>     Texts longer than --max-length: cut, or an error naming the line; text runs only. (default: truncate)
          --heads <shared|per-task>          One label space for all tasks, or one classifier head per task; text runs only. (default: shared)
          --group-by-length                  Batch texts of similar length together: less padding, less random batches; text runs only.
          --output <dir>                     Run folder. (default: runs/<timestamp>)
          --overwrite                        Replace the run already in --output (every file of it) instead of refusing.
          --resume <dir>                     Continue an interrupted run in <dir> (its settings are reused).
          --checkpoint-every <n>             Checkpoint every n steps (0: only on a signal and at the end). (default: 1000)
          --checkpoint-seconds <n>           Also checkpoint when this many seconds passed since the last (0: never). (default: 60)
          --allow-non-finite                 Load adapter weights holding NaN or infinity (refused by default), with a warning naming each such tensor.
          --stop-after <n>                   Stop after n steps as if interrupted (checkpoint, exit 130); for testing resume.
          --no-baseline                      Skip the shared-LoRA baseline of the same size (trained for poly, mhr).
          --quiet                            Print only the summary, no progress.
          --json                             Print progress and the summary as JSON lines.
          --help                             Show help information.

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
        XCTAssertEqual(polyctl(["export", "--adapter", run, "--adapterhub", "--task", "task02", "--output", "x"]).2,
                       "error: '--adapterhub' writes the whole adapter: no '--task' or '--merged'\nhint: see 'polyctl export --help'\n")
        XCTAssertEqual(polyctl(["export", "--adapter", run, "--name", "a", "--output", "x"]).2,
                       "error: '--name' needs '--adapterhub'\nhint: see 'polyctl export --help'\n")
        XCTAssertEqual(polyctl(["export", "--adapter", run, "--adapterhub", "--name", "a.b", "--output", "x"]).2,
                       "error: '--name a.b': the name is a level of the library's keys (no '.', no '/')\nhint: see 'polyctl export --help'\n")
        XCTAssertEqual(polyctl(["export", "--adapter", run, "--adapterhub", "--output", "x"]).2,
                       "error: \(run): a Poly run has no adapters-library format (bottleneck, Compacter, adapters-lora, adapters-ia3, adapters-prefix, mam and unipelt runs have, without --task-gates)\n")
    }
}
