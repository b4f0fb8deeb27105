import Foundation
import PolyPEFT

/// `polyctl export`: collapse each task's routed skills into a plain LoRA adapter folder that Hugging Face PEFT loads
/// and computes exactly (in both mixing modes), or merge one task into the base weights.
enum ExportCommand: Subcommand {
    static let name = "export"
    static let overview = "Export tasks as plain PEFT LoRA adapters (one folder per task), or a merged base model."
    static let usage = "export --adapter <dir> --output <dir> [--task <name> ...] [--merged]"
    static let options: [OptionSpec] = [
        .text("adapter", "<dir>", "Run folder written by 'polyctl train' (Poly or MHR)."),
        .text("output", "<dir>", "Where to write: <dir>/<task>/ per task, or <dir> itself with one --task."),
        .text("task", "<name>", "Export only this task (default: every task)."),
        .flag("merged", "With --task: write the base weights with the task merged in (model.safetensors)."),
    ]

    static func validate(_ args: ParsedArguments) throws {
        guard args.isGiven("adapter") else { throw CLIError.usage("missing '--adapter <dir>'", hint: args.hint) }
        guard args.isGiven("output") else { throw CLIError.usage("missing '--output <dir>'", hint: args.hint) }
        if args.flag("merged") && !args.isGiven("task") { throw CLIError.usage("'--merged' needs '--task <name>'", hint: args.hint) }
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let path = args.string("adapter")!, out = args.string("output")!
        let run = try RunModel.open(path)
        guard run.spec.method.isRouted, run.peft.config is PolyConfig else {
            throw CLIError.runtime("\(path): export collapses Poly / MHR tasks into LoRAs; a \(run.spec.method.label) run is already one PEFT adapter")
        }
        let tasks = try TaskTable(run.spec.taskNames)
        let dir = URL(fileURLWithPath: out)
        if args.flag("merged") {
            let name = args.string("task")!
            try run.peft.merge(task: try run.taskID(name))
            // The merged base network: adapted layers' base weights now hold the task's update.
            var weights: [String: Tensor] = [:]
            for (key, value) in run.model.stateDict() where !key.contains("poly_") {
                weights[key.replacingOccurrences(of: ".base_layer.", with: ".")] = value
            }
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try Safetensors.write(weights, metadata: ["format": "pt"], to: dir.appendingPathComponent(HFModelFolder.weightsFileName))
            guard let text = run.text, let spec = run.spec.text else {
                console.print("Wrote \(dir.path)/\(HFModelFolder.weightsFileName): the base network with task '\(name)' merged in")
                return
            }
            // A text run's merged model is a whole model folder: its config (a classifier's with the run's labels) and
            // tokenizer.
            var config = try JSONValue(parsing: try FileContents.read(text.folder.appendingPathComponent(HFModelFolder.configFileName))).objectValue ?? [:]
            if spec.kind == .classification {
                config["num_labels"] = .int(spec.outputCount)
                config["id2label"] = .object(Dictionary(uniqueKeysWithValues: (0..<spec.outputCount).map { (String($0), JSONValue.string(spec.label(ofOutput: $0))) }))
                config["architectures"] = ["BertForSequenceClassification"]
            }
            try AtomicFile.write(Data(JSONValue.object(config).pythonStyleString(indent: 2, sortKeys: true).utf8),
                                 to: dir.appendingPathComponent(HFModelFolder.configFileName))
            try AtomicFile.write(try FileContents.read(text.folder.appendingPathComponent(TextBase.tokenizerFileName)),
                                 to: dir.appendingPathComponent(TextBase.tokenizerFileName))
            let what = spec.kind == .classification ? "a BERT classifier" : "a T5"
            console.print("Wrote \(dir.path)/: \(what) folder (config.json, model.safetensors, tokenizer.json) with task '\(name)' merged in")
            return
        }
        if let name = args.string("task") {
            let folder = try run.peft.exportTaskLoRA(task: name, in: tasks, to: dir)
            console.print("Wrote \(folder.path): task '\(name)' as a LoRA adapter (PEFT format)")
        } else {
            let folders = try run.peft.exportTaskLoRAs(tasks, to: dir)
            console.print("Wrote \(folders.count) LoRA adapters (PEFT format) into \(dir.path)/<task>/")
        }
    }
}
