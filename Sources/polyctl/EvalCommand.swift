import Foundation
import PolyPEFT

/// `polyctl eval --adapter DIR`: per-task loss on the run's test split (or `--data`).
enum EvalCommand: Subcommand {
    static let name = "eval"
    static let overview = "Evaluate a trained run per task on its test data (or --data)."
    static let usage = "eval --adapter <dir> [--data <file>] [--json]"
    static let options: [OptionSpec] = [
        OptionSpec("adapter", "<dir>", "Run folder written by 'polyctl train'."),
        OptionSpec("data", "<file>", "Evaluate on this .jsonl/.csv file instead of the run's test split."),
        OptionSpec("json", nil, "Machine-readable output."),
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        guard let path = args.string("adapter") else {
            throw CLIError.usage("missing '--adapter <dir>'", hint: "see 'polyctl eval --help'")
        }
        let run = try RunModel.open(path)
        let data: MultitaskDataset
        if let file = args.string("data") {
            data = try MultitaskDataFile.read(file, taskNames: run.spec.taskNames)
        } else {
            data = try RunData.load(dataPath: run.spec.dataPath, seed: run.spec.dataSeed, hiddenDim: run.spec.hiddenDim).test
        }
        let (loss, perTask) = try RegressionObjective.evaluate(run.model, data)
        let counts = data.indicesByTask.mapValues(\.count)
        if args.flag("json") {
            let tasks = perTask.keys.sorted().map { t -> JSONValue in
                ["task": .string(run.spec.taskNames[t]), "mse": .double(Double(perTask[t]!)), "samples": .int(counts[t] ?? 0)]
            }
            console.print(JSONValue.object(["mse": .double(Double(loss)), "samples": .int(data.count), "tasks": .array(tasks)])
                .pythonStyleString(indent: 2, sortKeys: true))
            return
        }
        var table = TableFormatter(headers: ["task", "samples", "MSE"])
        for t in perTask.keys.sorted() {
            table.addRow([run.spec.taskNames[t], String(counts[t] ?? 0), formatFixed(Double(perTask[t]!), digits: 5)])
        }
        table.addRow(["all", String(data.count), formatFixed(Double(loss), digits: 5)])
        console.write(table.render())
    }
}
