import Foundation
import PolyPEFT

/// `polyctl infer --adapter DIR --task NAME --input FILE`: runs a trained adapter on inputs and prints one JSON line
/// per input: `{"output": [...]}`.
enum InferCommand: Subcommand {
    static let name = "infer"
    static let overview = "Run a trained adapter for a task on inputs (JSONL or safetensors)."
    static let usage = "infer --adapter <dir> [--task <name>] --input <file> [--output <file>]"
    static let options: [OptionSpec] = [
        .text("adapter", "<dir>", "Run folder written by 'polyctl train'."),
        .text("task", "<name>", "Task to route for (every input), e.g. task03; Poly / MHR runs need it."),
        .text("input", "<file>", "Inputs: .jsonl lines {\"input\": [...]} or .safetensors with a tensor \"x\" [N, in]."),
        .text("output", "<file>", "Write the JSON lines here instead of standard output."),
        .choice("unknown-task", ["error", "uniform"], "For a task the adapter does not know: fail, or route uniformly over the skills.", default: "error"),
        .allowNonFinite,
    ]

    static func validate(_ args: ParsedArguments) throws {
        guard args.isGiven("adapter") else { throw CLIError.usage("missing '--adapter <dir>'", hint: args.hint) }
        guard args.isGiven("input") else { throw CLIError.usage("missing '--input <file>'", hint: args.hint) }
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let run = try RunModel.open(args.string("adapter")!, allowNonFinite: args.flag("allow-non-finite"), console: console)
        let input = args.string("input")!
        let taskName = args.string("task")
        // Whether a task is needed depends on the adapter read above: a Poly adapter routes by task, a LoRA does not.
        if run.peft.config is PolyConfig, taskName == nil { throw CLIError.usage("missing '--task <name>'", hint: args.hint) }
        let policy = args.choice("unknown-task")
        var task = 0
        if let taskName {
            if policy == "uniform" && !run.spec.taskNames.contains(taskName) {
                var options = run.peft.routingOptions
                options.unknownTasks = .uniform
                try run.peft.setRoutingOptions(options)
                task = TaskTable.unknownID
            } else {
                task = try run.taskID(taskName)
            }
        }
        let x = try readInputs(input, width: run.model.inputWidth)
        let y = try run.model(Variable(x), Context.inference(taskIDs: [Int](repeating: task, count: x.shape[0]))).value
        let width = y.shape[1], v = y.scalars
        if let bad = v.firstIndex(where: { !$0.isFinite }) {
            throw CLIError.runtime("the output of input \(bad / width + 1) is not finite (\(v[bad])): the inputs or the "
                + "adapter's weights are out of range")
        }
        var text = ""
        for i in 0..<y.shape[0] {
            let row = v[(i * width)..<((i + 1) * width)].map { JSONValue.double(Double($0)) }
            text += JSONValue.object(["output": .array(row)]).compactString() + "\n"
        }
        if let out = args.string("output") {
            try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: out))
        } else {
            console.write(text)
        }
    }

    /// Inputs `[N, width]` from JSONL (`{"input": [...]}` per line) or a safetensors file with `x`.
    static func readInputs(_ path: String, width: Int) throws -> Tensor {
        let url = URL(fileURLWithPath: path)
        if path.hasSuffix(".safetensors") {
            let f = try SafetensorsFile(contentsOf: url)
            guard f.contains("x") else { throw CLIError.runtime("\(path): no tensor named \"x\"") }
            let x = try f.tensor("x")
            guard x.rank == 2, x.shape[1] == width else {
                throw CLIError.runtime("\(path): x has shape \(x.shape), expected [N, \(width)]")
            }
            guard x.shape[0] > 0 else { throw CLIError.runtime("\(path): no inputs (x has shape \(x.shape))") }
            if let bad = x.firstNonFiniteIndex() {
                throw CLIError.runtime("\(path): x[\(bad / width), \(bad % width)] is \(x.scalars[bad]); inputs must be finite")
            }
            return x
        }
        guard path.hasSuffix(".jsonl") else { throw CLIError.runtime("\(path): inputs must be .jsonl or .safetensors") }
        guard let text = String(data: try FileContents.read(url), encoding: .utf8) else {
            throw CLIError.runtime("\(path): not valid UTF-8")
        }
        var values: [Float] = []
        var rows = 0
        // `\r\n` is one Character in Swift, so lines are split on any newline character (CRLF files too).
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let json: JSONValue
            do { json = try JSONValue(parsing: String(trimmed)) } catch { throw CLIError.runtime("\(path):\(i + 1): not valid JSON (\(error))") }
            guard let arr = json["input"]?.arrayValue else { throw CLIError.runtime("\(path):\(i + 1): missing \"input\" list") }
            let row = arr.compactMap(\.doubleValue)
            guard row.count == arr.count, row.count == width else {
                throw CLIError.runtime("\(path):\(i + 1): \"input\" must hold \(width) finite numbers, got \(arr.count) values")
            }
            if let bad = row.first(where: { !Float($0).isFinite }) {
                throw CLIError.runtime("\(path):\(i + 1): \"input\" holds \(bad), which is not a finite 32-bit float")
            }
            values += row.map(Float.init)
            rows += 1
        }
        guard rows > 0 else { throw CLIError.runtime("\(path): no inputs") }
        return Tensor(values, shape: [rows, width])
    }
}
