import Foundation
import PolyPEFT

/// `polyctl infer --adapter DIR --task NAME --input FILE`: runs a trained adapter on inputs and prints one JSON line
/// per input: `{"output": [...]}`; for a text run `{"label": ..., "probability": ...}`, or with `--embeddings` the
/// sentence embedding `{"embedding": [...]}` (mean pooling over the mask, L2-normalised, as sentence-transformers);
/// for a text-to-text run `{"generation": ...}` (greedy).
enum InferCommand: Subcommand {
    static let name = "infer"
    static let overview = "Run a trained adapter for a task on inputs (numbers, or texts for a text run)."
    static let usage = "infer --adapter <dir> [--task <name>] --input <file> [--embeddings] [--output <file>]"
    static let options: [OptionSpec] = [
        .text("adapter", "<dir>", "Run folder written by 'polyctl train'."),
        .text("task", "<name>", "Task to route for (inputs without their own), e.g. task03; Poly / MHR runs need one."),
        .text("input", "<file>", "Inputs: .jsonl lines {\"input\": [...]} or .safetensors with \"x\" [N, in]; text runs: .jsonl lines {\"text\" (T5: \"source\"): ..., \"task\": ...} or .txt, a text per line."),
        .flag("embeddings", "Text classification runs: print sentence embeddings (mean pooling, L2-normalised) instead of labels."),
        .int("max-new-tokens", "Text-to-text runs: the longest generation, in tokens.", range: 1...Tokenizer.maxPaddedLength,
             note: "the run's --max-target-length"),
        .flag("logits", "Text runs: print the classifier's logits with each label (the task's head only, with --heads per-task)."),
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
        if run.spec.text?.kind != .classification, let flag = ["embeddings", "logits"].first(where: args.flag) {
            throw CLIError.runtime("'--\(flag)' is for text classification runs; \(run.dir.path) is \(run.text == nil ? "a numeric" : "a text-to-text") run")
        }
        if run.spec.text?.kind != .generation && args.isGiven("max-new-tokens") {
            throw CLIError.runtime("'--max-new-tokens' is for text-to-text runs; \(run.dir.path) is not one")
        }
        // Whether a task is needed depends on the adapter read above: a Poly adapter routes by task, a LoRA does not.
        let routed = run.peft.config is PolyConfig
        if routed && taskName == nil && run.text == nil { throw CLIError.usage("missing '--task <name>'", hint: args.hint) }
        var resolver = TaskResolver(run: run, uniform: args.choice("unknown-task") == "uniform")
        let task = try taskName.map { try resolver.id($0) } ?? 0
        let text: String
        if let base = run.text, let spec = run.spec.text {
            text = try inferText(args, run, base, spec, input: input, defaultTask: taskName == nil && routed ? nil : task,
                                 resolver: &resolver)
        } else {
            text = try inferNumbers(try run.mlp(for: "infer"), input: input, task: task)
        }
        if let out = args.string("output") {
            try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: out))
        } else {
            console.write(text)
        }
    }

    /// Task ids for task names, under the `--unknown-task` policy (uniform routing is switched on at the first
    /// unknown name).
    struct TaskResolver {
        let run: RunModel
        let uniform: Bool

        mutating func id(_ name: String) throws -> Int {
            guard uniform && !run.spec.taskNames.contains(name) else { return try run.taskID(name) }
            var options = run.peft.routingOptions
            if options.unknownTasks != .uniform {
                options.unknownTasks = .uniform
                try run.peft.setRoutingOptions(options)
            }
            return TaskTable.unknownID
        }
    }

    /// One JSON line per text: its label and probability (with `--logits`, the logits), or its embedding.
    static func inferText(_ args: ParsedArguments, _ run: RunModel, _ base: TextBase, _ spec: TextRunSpec, input: String,
                          defaultTask: Int?, resolver: inout TaskResolver) throws -> String {
        var tokenizer = base.tokenizer
        tokenizer.padding = nil
        tokenizer.truncation = spec.truncate ? Tokenizer.Truncation(maxLength: spec.maxLength) : nil
        var samples: [TextClassificationData.Sample] = []
        for (line, text, taskName) in try readTexts(input, key: spec.kind == .classification ? "text" : "source") {
            let fail = { (m: String) in CLIError.runtime("\(input):\(line): \(m)") }
            guard let task = try taskName.map({ try resolver.id($0) }) ?? defaultTask else {
                throw fail("no task: give the line a \"task\" or pass '--task <name>' (this adapter routes by task)")
            }
            if task == TaskTable.unknownID && spec.heads != nil && !args.flag("embeddings") {
                throw fail("the task is not one of the adapter's, and the run has a classifier head per task: routed uniformly, "
                    + "it gives embeddings only ('--embeddings')")
            }
            let e: Encoding
            do { e = try tokenizer.encode(text) } catch let err as TokenizerError { throw fail(err.message) }
            guard e.count <= spec.maxLength else {
                throw fail("the text is \(e.count) tokens long, more than the run's \(spec.maxLength) (it refuses long texts)")
            }
            samples.append(.init(taskID: task, labelID: 0, ids: e.ids, typeIDs: e.typeIDs))
        }
        if spec.kind == .generation {
            return try generate(samples, base: base, maxNewTokens: args.optionalInt("max-new-tokens") ?? spec.maxTargetLength ?? 128)
        }
        let outputs = TextClassificationData(taskNames: run.spec.taskNames,
                                             labelNames: (0..<spec.outputCount).map(spec.label(ofOutput:)), samples: [])
        let objective = try TextClassificationObjective(model: base.classifier, data: outputs, padID: base.padID, heads: spec.heads)
        var out = ""
        for start in stride(from: 0, to: samples.count, by: 64) {
            let chunk = Array(samples[start..<Swift.min(start + 64, samples.count)])
            let ctx = Context.inference(taskIDs: chunk.map(\.taskID))
            if args.flag("embeddings") {
                let (ids, mask, types) = objective.batch(chunk)
                let e = try base.classifier.bert.sentenceEmbeddings(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx)
                let d = e.shape[1], v = e.scalars
                for i in chunk.indices {
                    let row = try finite(v[(i * d)..<((i + 1) * d)], line: start + i + 1)
                    out += JSONValue.object(["embedding": .array(row.map { JSONValue.double(Double($0)) })]).compactString() + "\n"
                }
                continue
            }
            let logits = try objective.logits(chunk, ctx).value   // [B, outputs]
            let k = logits.shape[1], v = logits.scalars
            for i in chunk.indices {
                let row = try finite(v[(i * k)..<((i + 1) * k)], line: start + i + 1)
                let m = row.max()!, exps = row.map { exp(Double($0 - m)) }, total = exps.reduce(0, +)
                let best = exps.indices.max { exps[$0] < exps[$1] }!
                var o: [String: JSONValue] = ["label": .string(spec.label(ofOutput: best)), "probability": .double(exps[best] / total)]
                if args.flag("logits") {
                    // One head per task: the task's head only (the other outputs are masked out).
                    let task = chunk[i].taskID
                    let own = spec.heads.map { h in Array(row[h.offsets[task]..<(h.offsets[task] + h.labels[task].count)]) } ?? row
                    o["logits"] = .array(own.map { JSONValue.double(Double($0)) })
                }
                out += JSONValue.object(o).compactString() + "\n"
            }
        }
        return out
    }

    /// One `{"generation": ...}` line per source: greedy decoding, at most `maxNewTokens` tokens, decoded without
    /// special tokens.
    static func generate(_ samples: [TextClassificationData.Sample], base: TextBase, maxNewTokens: Int) throws -> String {
        let t5 = try base.generator
        let objective = TextToTextObjective(model: t5, data: TextToTextData(taskNames: [], samples: []))
        var out = ""
        for start in stride(from: 0, to: samples.count, by: 64) {
            let chunk = samples[start..<Swift.min(start + 64, samples.count)].map {
                TextToTextData.Sample(taskID: $0.taskID, sourceIDs: $0.ids, targetIDs: [])
            }
            for ids in try objective.generate(chunk, maxNewTokens: maxNewTokens) {
                out += JSONValue.object(["generation": .string(base.tokenizer.decode(ids, skipSpecialTokens: true))]).compactString() + "\n"
            }
        }
        return out
    }

    /// Throws unless every value of an output row is finite (a NaN is never printed as a result).
    static func finite(_ row: ArraySlice<Float>, line: Int) throws -> [Float] {
        if let bad = row.first(where: { !$0.isFinite }) {
            throw CLIError.runtime("the output of input \(line) is not finite (\(bad)): the adapter's weights are out of range")
        }
        return Array(row)
    }

    /// Texts with their line numbers and tasks: `.txt` (a text per non-empty line) or `.jsonl` (`{"<key>": ...}`
    /// with an optional `"task"`).
    static func readTexts(_ path: String, key: String) throws -> [(line: Int, text: String, task: String?)] {
        let body = try MultitaskDataFile.readText(path)
        var out: [(Int, String, String?)] = []
        if path.hasSuffix(".txt") {
            for (i, line) in body.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).enumerated()
            where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                out.append((i + 1, String(line), nil))
            }
        } else {
            guard path.hasSuffix(".jsonl") else { throw CLIError.runtime("\(path): texts must be .jsonl or .txt") }
            try MultitaskDataFile.forEachJSONLLine(body) { n, line in
                let fail = { (m: String) in CLIError.runtime("\(path):\(n): \(m)") }
                let o: [String: JSONValue]
                do {
                    guard let object = try JSONValue(parsing: line).objectValue else { throw fail("expected a JSON object") }
                    o = object
                } catch let e as JSONError { throw fail("not valid JSON (\(e))") }
                guard let text = o[key]?.stringValue else { throw fail("missing \"\(key)\" (a string)") }
                var task: String?
                switch o["task"] {
                case nil, .null?: task = nil
                case let .string(s)?: task = s
                case let .int(i)?: task = String(i)
                case let v?: throw fail("\"task\" must be a string or an integer (found \(v.kindName))")
                }
                out.append((n, text, task))
            }
        }
        guard !out.isEmpty else { throw CLIError.runtime("\(path): no texts") }
        return out
    }

    /// A numeric run: one `{"output": [...]}` line per input row.
    static func inferNumbers(_ model: MLP, input: String, task: Int) throws -> String {
        let x = try readInputs(input, width: model.inputWidth)
        let y = try model(Variable(x), Context.inference(taskIDs: [Int](repeating: task, count: x.shape[0]))).value
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
        return text
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
