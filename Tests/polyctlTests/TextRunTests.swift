import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

/// Text runs of `polyctl`: the built-in text tasks and a BERT folder with a JSONL file, through train, eval, infer,
/// export, resume, and their errors.
final class TextRunTests: CLITestCase {
    /// A short text run, no baseline.
    let short = ["--steps", "40", "--eval-every", "0", "--no-baseline"]

    func testBuiltInTextRunTrainsEvaluatesInfersAndExports() throws {
        let dir = root.appendingPathComponent("text").path
        let t = run(["train", "--text", "--json", "--output", dir] + short)
        XCTAssertEqual(t.code, 0, t.err)
        let summary = try JSONSerialization.jsonObject(with: Data(t.out.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual((summary["test_accuracy_per_task"] as! [String: Any]).keys.sorted(), SyntheticTextTasks.taskNames.sorted())
        for f in ["adapter_config.json", "adapter_model.safetensors", "polypeft_run.json", "base_model/config.json",
                  "base_model/model.safetensors", "base_model/tokenizer.json", "checkpoint/trainer_state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/base_model.safetensors"))
        let config = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json")))
        XCTAssertEqual(config["task_type"], "SEQ_CLS")
        XCTAssertEqual(config["modules_to_save"], ["classifier", "score"])
        // The base folder is a tokenizer and checkpoint any BERT reader takes.
        let tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: dir + "/base_model/tokenizer.json"))
        XCTAssertEqual(try tokenizer.encode("the red fox").ids, try SyntheticTextTasks.makeTokenizer().encode("the red fox").ids)

        // eval reopens the same model: the same test accuracy as the training summary.
        let e = run(["eval", "--adapter", dir, "--json"])
        XCTAssertEqual(e.code, 0, e.err)
        let ej = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
        XCTAssertEqual(ej["accuracy"] as! Double, summary["test_accuracy"] as! Double, accuracy: 1e-9)
        XCTAssertEqual(ej["samples"] as? Int, 250)
        XCTAssertEqual((ej["tasks"] as! [[String: Any]]).map { $0["task"] as! String }, SyntheticTextTasks.taskNames)
        let table = run(["eval", "--adapter", dir])
        XCTAssertTrue(table.out.hasPrefix("task      samples  accuracy  cross-entropy\n--------  -------  --------  -------------\nfirst          50  "), table.out)

        // infer: labels from .jsonl (a task per line) and .txt (--task); embeddings of unit length.
        let jsonl = root.appendingPathComponent("in.jsonl"), txt = root.appendingPathComponent("in.txt")
        try Data("{\"text\": \"the red fox\", \"task\": \"first\"}\n\n{\"text\": \"the red fox\", \"task\": \"last\"}\n".utf8).write(to: jsonl)
        try Data("the red fox\nrain and a cat\n".utf8).write(to: txt)
        let labels = run(["infer", "--adapter", dir, "--input", jsonl.path, "--logits"])
        XCTAssertEqual(labels.code, 0, labels.err)
        let rows = labels.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(rows.count, 2)
        XCTAssertTrue(SyntheticTextTasks.categories.map(\.name).contains(rows[0]["label"] as! String))
        XCTAssertEqual((rows[0]["logits"] as! [Double]).count, 4)
        let byTask = run(["infer", "--adapter", dir, "--input", txt.path, "--task", "first"])
        XCTAssertEqual(byTask.code, 0, byTask.err)
        XCTAssertEqual(byTask.out.split(separator: "\n").count, 2)
        let same = try JSONSerialization.jsonObject(with: Data(byTask.out.split(separator: "\n")[0].utf8)) as! [String: Any]
        XCTAssertEqual(same["label"] as? String, rows[0]["label"] as? String, "the same text and task, the same answer")
        XCTAssertEqual(same["probability"] as! Double, rows[0]["probability"] as! Double, accuracy: 1e-5, "padded in another batch")
        let emb = run(["infer", "--adapter", dir, "--input", txt.path, "--task", "last", "--embeddings"])
        XCTAssertEqual(emb.code, 0, emb.err)
        for line in emb.out.split(separator: "\n") {
            let v = (try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any])["embedding"] as! [Double]
            XCTAssertEqual(v.count, 32)
            XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
        }
        // Errors name the line or the task.
        try Data("{\"text\": \"the red fox\"}\n".utf8).write(to: jsonl)
        XCTAssertEqual(run(["infer", "--adapter", dir, "--input", jsonl.path]).err,
                       "error: \(jsonl.path):1: no task: give the line a \"task\" or pass '--task <name>' (this adapter routes by task)\n")
        XCTAssertTrue(run(["infer", "--adapter", dir, "--input", txt.path, "--task", "nope"]).err
            .hasPrefix("error: unknown task 'nope' (this adapter knows: first, last, second, majority, absent)"))
        XCTAssertEqual(run(["infer", "--adapter", dir, "--input", txt.path, "--task", "nope", "--unknown-task", "uniform"]).code, 0)
        XCTAssertEqual(run(["eval", "--adapter", dir, "--shots", "5"]).err,
                       "error: '--shots': few-shot adaptation is for numeric runs; \(dir) is a text run\n")

        // export --merged: a whole BERT classifier folder whose logits are the adapter's for that task.
        let merged = root.appendingPathComponent("merged")
        let x = run(["export", "--adapter", dir, "--output", merged.path, "--task", "first", "--merged"])
        XCTAssertEqual(x.code, 0, x.err)
        let (model, newHead, _) = try BertForSequenceClassification.load(from: merged)
        XCTAssertFalse(newHead)
        let ids = try tokenizer.encode("the red fox").ids
        let logits = try model.forward(inputIDs: [ids], .inference()).value.scalars
        for (a, b) in zip(logits, rows[0]["logits"] as! [Double]) { XCTAssertEqual(Double(a), b, accuracy: 1e-4) }
    }

    /// An interrupted text run (classification with per-task heads, and text-to-text) resumes to the adapter an
    /// uninterrupted run ends with, bit for bit.
    func testTextRunResumesBitForBit() throws {
        for (name, kind) in [("cls", ["--text", "--heads", "per-task"]), ("t2t", ["--text-to-text"])] {
            let a = root.appendingPathComponent(name + "a").path, b = root.appendingPathComponent(name + "b").path
            let options = ["train", "--quiet", "--steps", "30", "--eval-every", "10", "--no-baseline"] + kind
            XCTAssertEqual(run(options + ["--output", a]).code, 0)
            XCTAssertEqual(run(options + ["--output", b, "--stop-after", "12"]).code, 130)
            let r = run(["train", "--resume", b, "--quiet", "--no-baseline"])
            XCTAssertEqual(r.code, 0, r.err)
            let wa = try Safetensors.read(URL(fileURLWithPath: a + "/adapter_model.safetensors"))
            let wb = try Safetensors.read(URL(fileURLWithPath: b + "/adapter_model.safetensors"))
            XCTAssertEqual(wa.keys.sorted(), wb.keys.sorted(), name)
            for (k, v) in wa { XCTAssertEqual(v, wb[k], "\(name): \(k)") }
            if name == "cls" {
                XCTAssertEqual(wa["base_model.model.classifier.weight"]?.shape[0], 20, "5 tasks x 4 labels, one head each")
            }
        }
    }

    /// `export --adapterhub` of a bottleneck run: the adapters library's folder, with the run's adapter tensors under
    /// the library's keys (`.adapters.<name>.`, Compacter's shared rule at `shared_parameters.<name>.`), readable by
    /// `inspect`; a classifier's head is left out with a note.
    func checkAdapterHubExport(run a: String, method: String, classifier: Bool) throws {
        let out = root.appendingPathComponent(method + "-hub").path
        let x = run(["export", "--adapter", a, "--output", out, "--adapterhub", "--name", "sst"])
        XCTAssertEqual(x.code, 0, "\(method): \(x.err)")
        XCTAssertTrue(x.out.hasPrefix("Wrote \(out): adapter 'sst' in the adapters library's format"), x.out)
        XCTAssertEqual(x.out.contains("note: the trained classifier"), classifier, x.out)
        let peft = try Safetensors.read(URL(fileURLWithPath: a + "/adapter_model.safetensors"))
        let hub = try AdapterHubFolder.read(from: URL(fileURLWithPath: out))
        if method.hasPrefix("adapters-") {
            // <module>.lora_A -> <module>.loras.sst.lora_A; the classifier stays in the PEFT file
            var expected: [String: Tensor] = [:]
            for (k, t) in peft where !k.contains("classifier") && !k.contains("pooler") {
                let key = String(k.dropFirst(PeftModel.keyPrefix.count))
                let cut = key.range(of: ".lora_") ?? key.range(of: ".gate.")!
                expected[key[..<cut.lowerBound] + ".loras.sst." + key[key.index(after: cut.lowerBound)...]] = t
            }
            XCTAssertEqual(hub.tensors, expected, method)
            XCTAssertEqual(hub.config["architecture"], "lora")
            XCTAssertEqual(run(["inspect", out]).code, 0)
            return
        }
        XCTAssertEqual(hub.name, "sst")
        XCTAssertEqual(hub.modelClass, classifier ? "BertForSequenceClassification" : "T5ForConditionalGeneration")
        XCTAssertNil(hub.config["peft_type"])
        XCTAssertEqual(hub.config["phm_layer"], .bool(method == "compacter"))
        var expected: [String: Tensor] = [:]
        for (k, t) in peft where k.contains(".adapters.") || k.contains("shared_parameters.") {
            let key = String(k.dropFirst(PeftModel.keyPrefix.count))
                .replacingOccurrences(of: ".adapters.", with: ".adapters.sst.")
                .replacingOccurrences(of: "shared_parameters.", with: "shared_parameters.sst.")
            expected[key] = t
        }
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(hub.tensors, expected, method)
        let i = run(["inspect", out])
        XCTAssertEqual(i.code, 0, i.err)
        XCTAssertTrue(i.out.contains("(adapters library format)") && i.out.contains("Name: sst"), i.out)
    }

    /// The adapters library's prefix tuning and its unions train on the built-in text (BERT) and text-to-text (T5)
    /// tasks, reopen in `eval`, show their gates, and export to the library's format; with `--task-gates` the gates
    /// read a task table (PolyPEFT's, so no adapters-library export).
    func testUnionsAndTaskGates() throws {
        for (method, kind, extra) in [("unipelt", "--text", ["--task-gates"]), ("mam", "--text-to-text", ["--gating"]),
                                      ("adapters-prefix", "--text", [])] {
            let a = root.appendingPathComponent(method + "-u").path
            let t = run(["train", "--quiet", "--method", method, kind, "--steps", "12", "--eval-every", "6", "--no-baseline",
                         "--output", a] + extra)
            XCTAssertEqual(t.code, 0, "\(method): \(t.err)")
            let config = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: a + "/adapter_config.json")))
            let parts = config["configs"]?.arrayValue ?? [config]
            XCTAssertEqual(parts.count, method == "unipelt" ? 3 : method == "mam" ? 2 : 1, method)
            XCTAssertEqual(parts[0]["peft_type"], "POLYPEFT_ADAPTERS_PREFIX", method)
            XCTAssertEqual(parts[0]["prefix_length"], 3, "\(method): --virtual-tokens' default")
            XCTAssertEqual(parts[0]["polypeft_task_gates"], extra == ["--task-gates"] ? 5 : nil, method)
            XCTAssertEqual(run(["eval", "--adapter", a]).code, 0, method)
            let out = root.appendingPathComponent(method + "-u-hub").path
            let x = run(["export", "--adapter", a, "--output", out, "--adapterhub"])
            if extra == ["--task-gates"] {
                XCTAssertEqual(x.code, 1)
                XCTAssertTrue(x.err.contains("the adapters library has no 'polypeft_task_gates'"), x.err)
            } else {
                XCTAssertEqual(x.code, 0, "\(method): \(x.err)")
                let hub = try AdapterHubFolder.read(from: URL(fileURLWithPath: out))
                XCTAssertEqual(hub.config["architecture"], .string(method == "adapters-prefix" ? "prefix_tuning" : "union"), method)
                XCTAssertTrue(hub.tensors.keys.contains { $0.hasPrefix((kind == "--text" ? "bert." : "") + "prefix_tuning.prefix_tunings.") },
                              "\(method): \(hub.tensors.keys.sorted().prefix(4))")
            }
            guard !extra.isEmpty else {
                XCTAssertEqual(run(["inspect", a, "--gates"]).err, "error: \(a): a prefix tuning (adapters library) run without --gating has no gates\n")
                continue
            }
            let j = run(["inspect", a, "--gates", "--json"])
            XCTAssertEqual(j.code, 0, "\(method): \(j.err)")
            let columns = try XCTUnwrap(try JSONValue(parsing: Data(j.out.utf8))["gates"]?["all"]?.objectValue, method)
            XCTAssertTrue(columns.keys.contains { $0.hasSuffix(kind == "--text" ? " self_prefix" : " cross_prefix") }, "\(method): \(columns.keys.sorted())")
        }
        let bad = run(["train", "--method", "lora", "--task-gates"] + tiny)
        XCTAssertEqual(bad.code, 64)
        XCTAssertTrue(bad.err.hasPrefix("error: '--task-gates' applies to seq-bn, "), bad.err)
    }

    /// `inspect --gates` of a gated run: one row per task and "all", one column per layer and location, values in
    /// (0, 1); `--svg` draws them; a run without gates is an error.
    func checkGates(run a: String, method: String) throws {
        let j = run(["inspect", a, "--gates", "--json"])
        XCTAssertEqual(j.code, 0, "\(method): \(j.err)")
        let json = try JSONValue(parsing: Data(j.out.utf8))
        XCTAssertEqual(json["samples"], 250, method)
        let rows = try XCTUnwrap(json["gates"]?.objectValue, method)
        XCTAssertEqual(rows.count, 6, "5 tasks and all")
        let columns = try XCTUnwrap(rows["all"]?.objectValue)
        XCTAssertFalse(columns.isEmpty)
        let location = method == "seq-bn" ? "output_adapter" : method == "adapters-lora" ? "selfattn_lora" : "intermediate_lora"
        XCTAssertTrue(columns.keys.contains { $0.hasSuffix(" " + location) }, "\(method): \(columns.keys.sorted())")
        for (_, v) in columns { XCTAssertTrue((0...1).contains(v.doubleValue ?? -1), "\(method): \(v)") }
        let svg = root.appendingPathComponent(method + "-gates.svg").path
        let t = run(["inspect", a, "--gates", "--svg", svg])
        XCTAssertEqual(t.code, 0, t.err)
        XCTAssertTrue(t.out.hasPrefix("Mean gates of ") && t.out.hasSuffix("Wrote \(svg)\n"), t.out)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("<svg"))
    }

    /// Every PEFT method polyctl offers besides Poly / MHR / LoRA trains on the built-in text tasks (BERT and T5),
    /// writes a PEFT folder of its type that `eval` reopens; the prompt-learning ones resume bit for bit (P-tuning
    /// from the checkpoint's trained MLP, since its adapter file holds only the MLP's output).
    func testOtherPEFTMethodsOnText() throws {
        for (method, kind, type) in [("beft", "--text", "BEFT"), ("bitfit", "--text", "POLYPEFT_BITFIT"), ("ln-tuning", "--text-to-text", "LN_TUNING"),
                                     ("prompt-tuning", "--text", "PROMPT_TUNING"), ("p-tuning", "--text-to-text", "P_TUNING"),
                                     ("prefix-tuning", "--text", "PREFIX_TUNING"), ("seq-bn", "--text", "POLYPEFT_BOTTLENECK"),
                                     ("par-bn", "--text-to-text", "POLYPEFT_BOTTLENECK"), ("compacter", "--text", "POLYPEFT_BOTTLENECK"),
                                     ("ssf", "--text-to-text", "POLYPEFT_SSF"), ("adapters-lora", "--text", "POLYPEFT_ADAPTERS_LORA"),
                                     ("adapters-ia3", "--text-to-text", "POLYPEFT_ADAPTERS_LORA")] {
            let a = root.appendingPathComponent(method + "a").path
            let gated = ["seq-bn", "adapters-lora", "adapters-ia3"].contains(method)
            let options = ["train", "--quiet", "--method", method, kind, "--steps", "16", "--eval-every", "8", "--no-baseline"]
                + (gated ? ["--gating"] : [])
            let t = run(options + ["--output", a])
            XCTAssertEqual(t.code, 0, "\(method): \(t.err)")
            let config = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: a + "/adapter_config.json")))
            XCTAssertEqual(config["peft_type"], .string(type), method)
            XCTAssertEqual(config["inference_mode"], true, "\(method): written as PEFT's save_pretrained writes it")
            if type.hasSuffix("TUNING") && type != "LN_TUNING" { XCTAssertEqual(config["num_virtual_tokens"], 3, method) }
            if type == "POLYPEFT_BOTTLENECK" {
                // the preset's factor capped at hidden / 8: the built-in models are 32 wide
                XCTAssertEqual(config["reduction_factor"], method == "par-bn" ? 2 : 4, method)
                XCTAssertEqual(config["phm_layer"], .bool(method == "compacter"), method)
            }
            let e = run(["eval", "--adapter", a])
            XCTAssertEqual(e.code, 0, "\(method): \(e.err)")
            XCTAssertEqual(config["use_gating"], type == "POLYPEFT_BOTTLENECK" || type == "POLYPEFT_ADAPTERS_LORA" ? .bool(gated) : nil, method)
            if type == "POLYPEFT_ADAPTERS_LORA" { XCTAssertEqual(config["composition_mode"], .string(method == "adapters-lora" ? "add" : "scale")) }
            if type == "POLYPEFT_BOTTLENECK" || type == "POLYPEFT_ADAPTERS_LORA" {
                try checkAdapterHubExport(run: a, method: method, classifier: kind == "--text")
            }
            if gated { try checkGates(run: a, method: method) }
            guard ["p-tuning", "prompt-tuning", "compacter"].contains(method) else { continue }
            XCTAssertEqual(FileManager.default.fileExists(atPath: a + "/checkpoint/adapter_parameters.safetensors"), method == "p-tuning", method)
            let b = root.appendingPathComponent(method + "b").path
            XCTAssertEqual(run(options + ["--output", b, "--stop-after", "5"]).code, 130)
            let r = run(["train", "--resume", b, "--quiet", "--no-baseline"])
            XCTAssertEqual(r.code, 0, r.err)
            let wa = try Safetensors.read(URL(fileURLWithPath: a + "/adapter_model.safetensors"))
            let wb = try Safetensors.read(URL(fileURLWithPath: b + "/adapter_model.safetensors"))
            XCTAssertEqual(wa, wb, "\(method): resumed bit for bit")
        }
        for method in ["beft", "ssf", "sparse"] {
            let numeric = run(["train", "--method", method, "--output", root.appendingPathComponent(method + "-mlp").path] + tiny)
            XCTAssertEqual(numeric.code, 0, "\(method) on the built-in numeric network: \(numeric.err)")
        }
        // inspect counts a sparse adapter's values, not the positions saved beside them
        let sparseRun = root.appendingPathComponent("sparse-mlp").path
        let values = try Safetensors.read(URL(fileURLWithPath: sparseRun + "/adapter_model.safetensors"))
            .filter { $0.key.hasSuffix(".sparse_values") }.values.reduce(0) { $0 + $1.count }
        let inspected = run(["inspect", sparseRun])
        XCTAssertTrue(inspected.out.contains("Adapter parameters: \(values) in 2 tensors (and the positions of those entries in 2 index tensors)\n"),
                      inspected.out)
        // Sparse fine-tuning by Fisher information: the choice is saved in the run, so a resumed run is the same run.
        let fisher = ["train", "--method", "sparse", "--selection", "fisher", "--density", "0.1"] + tiny
        let fa = root.appendingPathComponent("fisher-a").path, fb = root.appendingPathComponent("fisher-b").path
        XCTAssertEqual(run(fisher + ["--output", fa]).code, 0)
        let spec = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: fa + "/polypeft_run.json")))
        XCTAssertEqual(spec["selection"], "fisher")
        XCTAssertNotNil(spec["budgetPattern"]?.objectValue)
        let saved = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: fa + "/adapter_config.json")))
        XCTAssertEqual(saved["selection"], "fisher")
        XCTAssertEqual(saved["budget_pattern"], spec["budgetPattern"])
        XCTAssertEqual(run(fisher + ["--output", fb, "--stop-after", "3"]).code, 130)
        XCTAssertEqual(run(["train", "--resume", fb, "--quiet"]).code, 0)
        XCTAssertEqual(try Safetensors.read(URL(fileURLWithPath: fa + "/adapter_model.safetensors")),
                       try Safetensors.read(URL(fileURLWithPath: fb + "/adapter_model.safetensors")), "Fisher run resumed bit for bit")
        XCTAssertEqual(run(["train", "--method", "lora", "--selection", "fisher"] + tiny).code, 64)
        let tooMany = run(["train", "--text", "--method", "prompt-tuning", "--virtual-tokens", "8", "--output", root.appendingPathComponent("x").path])
        XCTAssertEqual(tooMany.code, 1)
        XCTAssertEqual(tooMany.err, "error: --virtual-tokens 8 and texts of up to 13 tokens need 21 positions; the model has 16 (use --virtual-tokens 3 or fewer)\n")
    }

    /// A BERT folder (without a pooler, so the fresh pooler trains and is saved) and a JSONL file: per-task heads,
    /// long texts refused or truncated, labels and tasks the run never saw.
    func testModelFolderRun() throws {
        let model = try writeModelFolder(pooler: false)
        let data = try writeData(lines: 60)
        let dir = root.appendingPathComponent("run").path
        let t = run(["train", "--model", model.path, "--data", data.path, "--output", dir, "--heads", "per-task", "--quiet",
                     "--method", "mhr", "--targets", "query,key"] + short)
        XCTAssertEqual(t.code, 0, t.err)
        XCTAssertTrue(t.out.contains("Test accuracy: "), t.out)
        let config = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json")))
        XCTAssertEqual(config["modules_to_save"], ["classifier", "pooler", "score"])
        XCTAssertEqual(config["target_modules"], ["query", "key"])
        let tensors = try Safetensors.read(URL(fileURLWithPath: dir + "/adapter_model.safetensors"))
        XCTAssertNotNil(tensors["base_model.model.bert.pooler.dense.weight"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/base_model"), "a user's model stays where it is")
        let spec = try RunSpec.read(from: URL(fileURLWithPath: dir))
        XCTAssertEqual(spec.text?.modelPath, model.path)
        XCTAssertEqual(spec.text?.heads?.labels.count, 2)
        XCTAssertEqual(run(["eval", "--adapter", dir]).code, 0)

        // Labels and tasks the run did not train on, in eval --data: errors naming the line.
        let other = root.appendingPathComponent("other.jsonl")
        try Data("{\"task\": \"a\", \"text\": \"red fox\", \"label\": \"color\"}\n{\"task\": \"a\", \"text\": \"red fox\", \"label\": \"mineral\"}\n".utf8).write(to: other)
        XCTAssertEqual(run(["eval", "--adapter", dir, "--data", other.path]).err,
                       "error: \(other.path):2: unknown label 'mineral' (known: \(spec.text!.labelNames.joined(separator: ", ")))\n")
        try Data("{\"task\": \"z\", \"text\": \"red fox\", \"label\": \"color\"}\n".utf8).write(to: other)
        XCTAssertEqual(run(["eval", "--adapter", dir, "--data", other.path]).err, "error: \(other.path):1: unknown task 'z' (known: a, b)\n")

        // Long texts: refused with the line, or truncated to --max-length.
        let long = root.appendingPathComponent("long.jsonl")
        var text = try String(contentsOf: data, encoding: .utf8)
        text += "{\"task\": \"a\", \"text\": \"" + String(repeating: "red ", count: 40) + "\", \"label\": \"color\"}\n"
        try Data(text.utf8).write(to: long)
        let refused = run(["train", "--model", model.path, "--data", long.path, "--output", dir + "2", "--long-texts", "refuse"] + short)
        XCTAssertEqual(refused.code, 1)
        XCTAssertEqual(refused.err, "error: \(long.path):61: the text is 42 tokens long, more than the model's 16 positions (truncate long texts instead of refusing them to keep it)\n")
        XCTAssertEqual(run(["train", "--model", model.path, "--data", long.path, "--output", dir + "3", "--quiet", "--max-length", "8"] + short).code, 0)
        XCTAssertEqual(run(["train", "--model", model.path, "--data", long.path, "--output", dir + "4", "--max-length", "17"] + short).err,
                       "error: --max-length 17 is more than the model's 16 positions (max_position_embeddings)\n")
    }

    /// Folders that are not BERT models, each an error naming the folder or file.
    func testModelFolderErrors() throws {
        let data = try writeData(lines: 20)
        func train(_ model: String) -> String {
            run(["train", "--model", model, "--data", data.path, "--output", root.appendingPathComponent("x").path] + short).err
        }
        let missing = root.appendingPathComponent("missing").path
        XCTAssertEqual(train(missing), "error: \(missing): not a folder (--model takes a model folder: config.json, model.safetensors, tokenizer.json)\n")
        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertEqual(train(empty.path), "error: \(empty.path): not a model folder (no config.json)\n")
        let gpt2 = try writeModelFolder(pooler: true, name: "gpt2")
        try Data("{\"model_type\": \"gpt2\"}".utf8).write(to: gpt2.appendingPathComponent("config.json"))
        XCTAssertEqual(train(gpt2.path), "error: \(gpt2.path)/config.json: model_type is 'gpt2'; text runs take BERT encoders "
            + "(model_type 'bert': classification) and T5 (model_type 't5' or 'mt5': text-to-text)\n")
        let noTokenizer = try writeModelFolder(pooler: true, name: "notok")
        try FileManager.default.removeItem(at: noTokenizer.appendingPathComponent("tokenizer.json"))
        XCTAssertTrue(train(noTokenizer.path).hasPrefix("error: \(noTokenizer.path): no tokenizer.json (the `tokenizers` library's file"))
        let bpe = try writeModelFolder(pooler: true, name: "bpe")
        var json = SyntheticTextTasks.tokenizerJSON.objectValue!
        json["model"] = ["type": "BPE", "vocab": [:], "merges": []]
        try Data(JSONValue.object(json).compactString().utf8).write(to: bpe.appendingPathComponent("tokenizer.json"))
        let e = train(bpe.path)
        XCTAssertTrue(e.hasPrefix("error: \(bpe.path)/tokenizer.json") && e.contains("BPE"), e)
    }

    func testTextUsageErrors() {
        for (args, message) in [
            (["--model", "m"], "'--model' needs '--data <file.jsonl>' (lines {\"task\": ..., \"text\": ..., \"label\": ...})"),
            (["--text", "--data", "d.jsonl"], "'--text' trains on built-in text tasks; it cannot be combined with '--data'"),
            (["--text-to-text", "--text"], "'--text' trains on built-in text tasks; it cannot be combined with '--text-to-text'"),
            (["--heads", "per-task"], "'--heads' applies to text runs ('--text', '--text-to-text' or '--model <dir>')"),
            (["--group-by-length"], "'--group-by-length' applies to text runs ('--text', '--text-to-text' or '--model <dir>')"),
            (["--text", "--method", "ia3", "--feedforward", "fc1"], "'--feedforward' applies to the built-in numeric network; text runs take IA3's feed-forward modules from PEFT's defaults (BERT: output.dense, T5: wo)"),
            (["--text", "--targets", " , "], "'--targets' needs module names separated by commas, got ' , '"),
            (["--method", "ln-tuning"], "'--method ln-tuning' needs a transformer: add '--text', '--text-to-text' or '--model <dir> --data <file>'"),
            (["--method", "prompt-tuning"], "'--method prompt-tuning' needs a transformer: add '--text', '--text-to-text' or '--model <dir> --data <file>'"),
            (["--text", "--method", "p-tuning", "--targets", "query"], "'--targets' does not apply to p-tuning, which adapts the model's inputs, not its modules"),
            (["--text", "--virtual-tokens", "2"], "'--virtual-tokens' applies to prompt-tuning, p-tuning, prefix-tuning, adapters-prefix, mam and unipelt, not poly"),
        ] {
            let r = run(["train"] + args)
            XCTAssertEqual(r.code, 64, "\(args)")
            XCTAssertEqual(r.err, "error: \(message)\nhint: see 'polyctl train --help'\n", "\(args)")
        }
    }

    /// The built-in text-to-text tasks on their tiny T5, and a T5 folder with a task / source / target file:
    /// train, eval (exact match), infer (generations), and the errors of mixing kinds.
    func testTextToTextRuns() throws {
        let dir = root.appendingPathComponent("t2t").path
        let t = run(["train", "--text-to-text", "--json", "--output", dir] + short)
        XCTAssertEqual(t.code, 0, t.err)
        let summary = try JSONSerialization.jsonObject(with: Data(t.out.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual((summary["test_exact_match_per_task"] as! [String: Any]).keys.sorted(), SyntheticTextToTextTasks.taskNames.sorted())
        let config = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json")))
        XCTAssertEqual(config["task_type"], "SEQ_2_SEQ_LM")
        XCTAssertEqual(config["target_modules"], ["q", "k", "v", "o", "wi", "wo"])
        let e = run(["eval", "--adapter", dir, "--json"])
        XCTAssertEqual(e.code, 0, e.err)
        let ej = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
        XCTAssertEqual(ej["exact_match"] as! Double, summary["test_exact_match"] as! Double, accuracy: 1e-9)
        let input = root.appendingPathComponent("in.jsonl")
        try Data("{\"source\": \"the red fox\", \"task\": \"first\"}\n{\"source\": \"gold owl\", \"task\": \"copy\"}\n".utf8).write(to: input)
        let g = run(["infer", "--adapter", dir, "--input", input.path, "--max-new-tokens", "4"])
        XCTAssertEqual(g.code, 0, g.err)
        let lines = g.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        for line in lines {
            let text = (try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any])["generation"] as! String
            XCTAssertLessThanOrEqual(text.split(separator: " ").count, 4, text)
            XCTAssertTrue(text.split(separator: " ").allSatisfy { SyntheticTextToTextTasks.words.contains(String($0)) }, text)
        }
        XCTAssertEqual(run(["infer", "--adapter", dir, "--input", input.path, "--embeddings"]).err,
                       "error: '--embeddings' is for text classification runs; \(dir) is a text-to-text run\n")
        XCTAssertEqual(run(["train", "--text-to-text", "--heads", "per-task", "--output", dir + "2"] + short).err,
                       "error: '--heads' is for classification; --text-to-text trains a T5 (text-to-text)\n")

        // A T5 folder: its data is task / source / target, each line checked.
        let model = root.appendingPathComponent("t5")
        let t5 = try T5ForConditionalGeneration(config: try T5Config(json: SyntheticTextToTextTasks.modelConfig), seed: 3)
        try HFModelFolder.write(config: SyntheticTextToTextTasks.modelConfig, tensors: t5.stateDict(), to: model)
        try Data(SyntheticTextToTextTasks.tokenizerJSON.compactString().utf8).write(to: model.appendingPathComponent("tokenizer.json"))
        var g2 = Xoshiro256(seed: 8)
        var lines2 = ""
        for i in 0..<30 {
            let (source, target) = SyntheticTextToTextTasks.sample(task: i % 2, using: &g2)
            lines2 += JSONValue.object(["task": .string(i % 2 == 0 ? "copy" : "sort"), "source": .string(source),
                                        "target": .string(target)]).compactString() + "\n"
        }
        let data = root.appendingPathComponent("t2t.jsonl")
        try Data(lines2.utf8).write(to: data)
        let m = run(["train", "--model", model.path, "--data", data.path, "--output", dir + "3", "--quiet", "--method", "lora"] + short)
        XCTAssertEqual(m.code, 0, m.err)
        XCTAssertTrue(m.out.contains("Test exact match: "), m.out)
        let spec = try RunSpec.read(from: URL(fileURLWithPath: dir + "3"))
        XCTAssertEqual(spec.text?.kind, .generation)
        XCTAssertEqual(spec.text?.targets, ["q", "v"], "PEFT's defaults for T5")
        XCTAssertEqual(spec.taskNames, ["copy", "sort"])
        let classification = try writeData(lines: 20)
        XCTAssertEqual(run(["train", "--model", model.path, "--data", classification.path, "--output", dir + "4"] + short).err,
                       "error: \(classification.path):1: missing key \"source\"\n")
    }

    // MARK: Fixtures

    /// A tiny BERT folder over the built-in text tasks' vocabulary (16 positions), with or without a pooler.
    func writeModelFolder(pooler: Bool, name: String = "model") throws -> URL {
        let dir = root.appendingPathComponent(name)
        var config = SyntheticTextTasks.modelConfig.objectValue!
        config["num_labels"] = nil
        let bert = try BertModel(config: try BertConfig(json: .object(config)), addPoolingLayer: pooler, seed: 7)
        try HFModelFolder.write(config: .object(config), tensors: bert.stateDict(), to: dir)
        try Data(SyntheticTextTasks.tokenizerJSON.compactString().utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        return dir
    }

    /// `lines` JSONL samples of two tasks ("a": the first word's category, "b": the last's).
    func writeData(lines: Int) throws -> URL {
        var g = Xoshiro256(seed: 4)
        var text = ""
        for i in 0..<lines {
            let (sentence, label) = SyntheticTextTasks.sample(task: i % 2, using: &g)
            text += JSONValue.object(["task": .string(i % 2 == 0 ? "a" : "b"), "text": .string(sentence),
                                      "label": .string(SyntheticTextTasks.categories[label].name)]).compactString() + "\n"
        }
        let url = root.appendingPathComponent("data.jsonl")
        try Data(text.utf8).write(to: url)
        return url
    }
}
