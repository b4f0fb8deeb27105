import Foundation
import PolyPEFT

/// `polyctl eval --adapter DIR`: per-task loss on the run's test split (or `--data`) and, for a Poly/MHR run on the
/// built-in data, few-shot adaptation to the held-out tasks (z and full modes) against a shared LoRA of the same size.
/// A text run reports per-task accuracy (text-to-text: exact match of greedy generations) and cross-entropy.
enum EvalCommand: Subcommand {
    static let name = "eval"
    static let overview = "Evaluate a trained run per task, and few-shot on held-out tasks against a shared LoRA."
    static let usage = "eval --adapter <dir> [--data <file>] [--shots <k>] [--json]"
    static let options: [OptionSpec] = [
        .text("adapter", "<dir>", "Run folder written by 'polyctl train'."),
        .text("data", "<file>", "Evaluate on this .jsonl/.csv file (text runs: .jsonl task/text/label or task/source/target) instead of the run's test split."),
        .int("shots", "<k>", "Examples per held-out task for few-shot adaptation (built-in data).", range: 1...10_000, default: 20),
        .flag("no-fewshot", "Skip few-shot adaptation to the held-out tasks."),
        .flag("json", "Machine-readable output."),
        .allowNonFinite,
    ]

    static func validate(_ args: ParsedArguments) throws {
        guard args.isGiven("adapter") else { throw CLIError.usage("missing '--adapter <dir>'", hint: args.hint) }
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let run = try RunModel.open(args.string("adapter")!, allowNonFinite: args.flag("allow-non-finite"), console: console)
        if let text = run.spec.text, let base = run.text { return try evaluateText(args, console, run, text, base) }
        let model = try run.mlp(for: "eval")
        let data: MultitaskDataset
        if let file = args.string("data") {
            data = try MultitaskDataFile.read(file, taskNames: run.spec.taskNames)
        } else {
            data = try RunData.load(dataPath: run.spec.dataPath, seed: run.spec.dataSeed, hiddenDim: run.spec.hiddenDim,
                                    taskNames: run.spec.taskNames).test
        }
        let shots = args.int("shots")
        let (loss, perTask) = try RegressionObjective.evaluate(model, data)
        let counts = data.indicesByTask.mapValues(\.count)
        let fewShot = args.flag("no-fewshot") || run.spec.dataPath != nil || !run.spec.method.isRouted ? nil
            : try heldOut(run, shots: shots)
        if args.flag("json") {
            let tasks = perTask.keys.sorted().map { t -> JSONValue in
                ["task": .string(run.spec.taskNames[t]), "mse": .double(Double(perTask[t]!)), "samples": .int(counts[t] ?? 0)]
            }
            var o: [String: JSONValue] = ["mse": .double(Double(loss)), "samples": .int(data.count), "tasks": .array(tasks)]
            if let fewShot {
                o["few_shot"] = .object(["shots": .int(shots), "tasks": .array(fewShot.map { r in
                    .object(["task": .string(r.task), "z": .double(Double(r.z)), "full": .double(Double(r.full)),
                             "shared_lora": .double(Double(r.shared))])
                })])
            }
            console.print(JSONValue.object(o).pythonStyleString(indent: 2, sortKeys: true))
            return
        }
        var table = TableFormatter(headers: ["task", "samples", "MSE"])
        for t in perTask.keys.sorted() {
            table.addRow([run.spec.taskNames[t], String(counts[t] ?? 0), formatFixed(Double(perTask[t]!), digits: 5)])
        }
        table.addRow(["all", String(data.count), formatFixed(Double(loss), digits: 5)])
        console.write(table.render())
        guard let fewShot else { return }
        let label = run.spec.method.label
        console.print("")
        console.print("Held-out tasks, adapted on \(shots) examples each (test MSE):")
        var few = TableFormatter(headers: ["task", "\(label)-z", "\(label) full", "shared LoRA"])
        for r in fewShot {
            few.addRow([r.task, formatFixed(Double(r.z), digits: 5), formatFixed(Double(r.full), digits: 5), formatFixed(Double(r.shared), digits: 5)])
        }
        console.write(few.render())
        console.print("(\(label)-z trains only the new task's routing logits; shared LoRA: one adapter of the same size trained on all training tasks, then on the new task)")
    }

    /// A text run: accuracy and cross-entropy per task on the test split or `--data` (whose tasks and labels must be
    /// the run's: an unseen one is an error naming its line).
    static func evaluateText(_ args: ParsedArguments, _ console: Console, _ run: RunModel, _ text: TextRunSpec,
                             _ base: TextBase) throws {
        if let option = ["shots", "no-fewshot"].first(where: { args.isGiven($0) || args.flag($0) }) {
            throw CLIError.runtime("'--\(option)': few-shot adaptation is for numeric runs; \(run.dir.path) is a text run")
        }
        let e: RunEvaluation, samples: Int
        switch text.kind {
        case .classification:
            var set: TextClassificationData
            if let file = args.string("data") {
                set = try TextRunData.read(file, text, tokenizer: base.tokenizer, taskNames: run.spec.taskNames, labelNames: text.labelNames)
                if let heads = text.heads { set = try heads.relabel(set, source: file) }
            } else {
                set = try TextRunData.load(run.spec, text, tokenizer: base.tokenizer).test
            }
            let objective = try TextClassificationObjective(model: try base.classifier, data: set, padID: base.padID, heads: text.heads)
            (e, samples) = (try TextClassificationWorkload.evaluate(objective, set), set.count)
        case .generation:
            let set = try args.string("data").map { try TextToTextRunData.read($0, text, tokenizer: base.tokenizer, taskNames: run.spec.taskNames) }
                ?? TextToTextRunData.load(run.spec, text, tokenizer: base.tokenizer).test
            (e, samples) = (try TextToTextWorkload.evaluate(TextToTextObjective(model: try base.generator, data: set), set), set.count)
        }
        let metric = e.accuracyName.replacingOccurrences(of: " ", with: "_")
        if args.flag("json") {
            let tasks = e.perTask.keys.sorted().map { t -> JSONValue in
                let r = e.perTask[t]!
                return ["task": .string(run.spec.taskNames[t]), metric: .double(Double(r.accuracy ?? .nan)),
                        "cross_entropy": .double(Double(r.loss)), "samples": .int(r.samples)]
            }
            let o: [String: JSONValue] = [metric: .double(Double(e.accuracy ?? .nan)), "cross_entropy": .double(Double(e.loss)),
                                          "samples": .int(samples), "tasks": .array(tasks)]
            console.print(JSONValue.object(o).pythonStyleString(indent: 2, sortKeys: true))
            return
        }
        console.write(TrainReport.accuracyTable(e, taskNames: run.spec.taskNames).render())
    }

    /// Few-shot adaptation to each held-out task of the built-in data: z mode, full mode, and the shared-LoRA baseline.
    static func heldOut(_ run: RunModel, shots: Int) throws -> [(task: String, z: Float, full: Float, shared: Float)] {
        let data = try RunData.load(dataPath: nil, seed: run.spec.dataSeed, hiddenDim: run.spec.hiddenDim, taskNames: run.spec.taskNames)
        guard let synthetic = data.synthetic else { return [] }
        let trained = TrainedAdapter(config: run.peft.config, tensors: try run.peft.adapterTensors(), baseWeights: data.baseWeights, testLoss: .nan)
        var lora = run.spec
        lora.method = .lora
        lora.rank = run.spec.skills * run.spec.rank
        let shared = try TrainedAdapter.train(lora.adapterConfig(), data: synthetic, training: run.spec.training, seed: run.spec.dataSeed)
        var settings = FewShotSettings()
        settings.seed = run.spec.dataSeed
        let pool = synthetic.fewShotPool, test = synthetic.heldOutTest
        return try pool.tasks.map { t in
            let train = pool.subset(Array(pool.indices(ofTask: t).prefix(shots))), tt = test.subset(test.indices(ofTask: t))
            return (synthetic.heldOutTaskNames[t],
                    try FewShot.adapt(.routingOnly, trained: try trained.copy(), train: train, test: tt, settings: settings).mse,
                    try FewShot.adapt(.full, trained: try trained.copy(), train: train, test: tt, settings: settings).mse,
                    try FewShot.adapt(.sharedLoRA, trained: try shared.copy(), train: train, test: tt, settings: settings).mse)
        }
    }
}
