import Foundation
import PolyPEFT

/// `polyctl export`: collapse each task's routed skills into a plain LoRA adapter folder that Hugging Face PEFT loads
/// and computes exactly (in both mixing modes), or merge one task into the base weights; or write the adapter of a
/// run of a method the adapters library shares (bottleneck adapters, Compacter, its LoRA and (IA)^3) in that
/// library's (AdapterHub's) folder format.
enum ExportCommand: Subcommand {
    static let name = "export"
    static let overview = "Export tasks as plain PEFT LoRA adapters (one folder per task), a merged base model, or an adapters-library folder."
    static let usage = "export --adapter <dir> --output <dir> [--task <name> ...] [--merged] [--adapterhub [--name <name>]]"
    static let options: [OptionSpec] = [
        .text("adapter", "<dir>", "Run folder written by 'polyctl train' (Poly or MHR)."),
        .text("output", "<dir>", "Where to write: <dir>/<task>/ per task, or <dir> itself with one --task."),
        .text("task", "<name>", "Export only this task (default: every task)."),
        .flag("merged", "With --task: write the base weights with the task merged in (model.safetensors)."),
        .flag("adapterhub", "Bottleneck, Compacter, adapters-lora / -ia3 / -prefix, mam and unipelt runs: write the adapter as the adapters library saves it (adapter_config.json, adapter.safetensors)."),
        .text("name", "<name>", "With --adapterhub: the adapter's name, a level of every key (default: polypeft)."),
    ]

    static func validate(_ args: ParsedArguments) throws {
        guard args.isGiven("adapter") else { throw CLIError.usage("missing '--adapter <dir>'", hint: args.hint) }
        guard args.isGiven("output") else { throw CLIError.usage("missing '--output <dir>'", hint: args.hint) }
        if args.flag("merged") && !args.isGiven("task") { throw CLIError.usage("'--merged' needs '--task <name>'", hint: args.hint) }
        if args.flag("adapterhub") && (args.isGiven("task") || args.flag("merged")) {
            throw CLIError.usage("'--adapterhub' writes the whole adapter: no '--task' or '--merged'", hint: args.hint)
        }
        if args.isGiven("name") && !args.flag("adapterhub") { throw CLIError.usage("'--name' needs '--adapterhub'", hint: args.hint) }
        if let name = args.string("name"), name.isEmpty || name.contains(".") || name.contains("/") {
            throw CLIError.usage("'--name \(name)': the name is a level of the library's keys (no '.', no '/')", hint: args.hint)
        }
    }

    /// `--adapterhub`: the adapters library's folder, for the methods it shares.
    static func runAdapterHub(_ run: RunModel, name: String, to dir: URL, _ console: Console, path: String) throws {
        guard run.peft.config is any AdapterHubMethod else {
            throw CLIError.runtime("\(path): a \(run.spec.method.label) run has no adapters-library format (bottleneck, Compacter, adapters-lora, adapters-ia3, adapters-prefix, mam and unipelt runs have, without --task-gates)")
        }
        try run.peft.saveAdapterHub(to: dir, name: name, omittingSavedModules: true)
        console.print("Wrote \(dir.path): adapter '\(name)' in the adapters library's format (load_adapter(dir, use_safetensors=True))")
        if !(run.peft.config.modulesToSave ?? []).isEmpty {
            console.print("note: the trained \((run.peft.config.modulesToSave ?? []).joined(separator: " and ")) is not part of an adapters-library "
                + "adapter folder; it stays in \(path)/\(PeftAdapterFolder.weightsFileName)")
        }
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let path = args.string("adapter")!, out = args.string("output")!
        let run = try RunModel.open(path)
        if args.flag("adapterhub") {
            return try runAdapterHub(run, name: args.string("name") ?? "polypeft", to: URL(fileURLWithPath: out), console, path: path)
        }
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
