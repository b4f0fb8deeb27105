import Foundation
import PolyPEFT

/// `polyctl train`: trains Poly, MHR, or one LoRA, IA3 or DoRA shared by all tasks, on the built-in multitask data (or
/// `--data`), shows progress, the learned allocation (routed methods) and how it matches the truth, and writes a PEFT
/// adapter plus everything resume needs. Text runs (`--text`, or `--model DIR --data tasks.jsonl`) train a BERT
/// classifier on multitask text and report per-task accuracy.
enum TrainCommand: Subcommand {
    static let name = "train"
    static let overview = "Train Poly / MHR or another PEFT method (LoRA, IA3, DoRA, BEFT, BitFit, SSF, sparse fine-tuning, LN tuning, prompt, P- and prefix tuning, bottleneck adapters, Compacter, MAM, UniPELT) on multitask data (built-in by default)."
    static let usage = "train [--method <method>] [--text | --text-to-text | --model <dir> --data <file>] [--steps <n>] [--output <dir>] [options]"
    /// Routing blocks per skill when `--splits` is not given, by method.
    static let defaultSplits: [(method: RunMethod, splits: Int)] = [(.poly, 1), (.mhr, 4)]
    /// Options that configure some methods only, and those methods: given with another method, a usage error.
    static let methodOptions: [(option: String, methods: [RunMethod])] = [
        ("skills", [.poly, .mhr]), ("splits", [.poly, .mhr]), ("rank", [.poly, .mhr, .lora, .dora, .adaptersLoRA, .unipelt]),
        ("mixing", [.poly, .mhr]), ("router-lr", [.poly, .mhr] + RunMethod.allCases.filter(\.takesTaskGates)), ("feedforward", [.ia3]),
        ("virtual-tokens", RunMethod.allCases.filter(\.takesVirtualTokens)),
        ("reduction-factor", RunMethod.allCases.filter { $0.bottleneckPart != nil }), ("density", [.sparse]), ("selection", [.sparse]),
        ("gating", RunMethod.allCases.filter(\.isGateable)), ("task-gates", RunMethod.allCases.filter(\.takesTaskGates)),
    ]
    /// Options of text runs only (`--text` or `--model`).
    static let textOptions = ["targets", "max-length", "max-target-length", "long-texts", "heads", "group-by-length"]
    /// Training batches the Fisher information of `--selection fisher` is summed over.
    static let fisherBatches = 8
    /// The batch size of text runs when `--batch-size` is not given.
    static let textBatchSize = 32
    /// `--feedforward`'s values and the IA3 feed-forward modules each stands for.
    static let feedforwardChoices: [(name: String, modules: [String])] = [
        ("fc2", ["fc2"]), ("fc1", ["fc1"]), ("both", ["fc1", "fc2"]), ("none", []),
    ]
    /// Where a run goes when `--output` is not given: `runs/<timestamp>` (`defaultOutput`).
    static let outputRoot = "runs"
    /// The options a `--resume` may be combined with (the run's saved settings give everything else).
    static let resumable: Set<String> = ["resume", "quiet", "json", "stop-after", "no-baseline", "checkpoint-every",
                                         "checkpoint-seconds", "allow-non-finite"]

    static let options: [OptionSpec] = {
        let training = TrainingConfiguration()
        return [
            .choice("method", RunMethod.allCases.map(\.rawValue),
                    "Adapter: Poly, MHR (Poly with splits), or one adapter shared by all tasks (LoRA, IA3, DoRA, BEFT, BitFit, SSF, sparse; on text: LN tuning, prompt tuning, P-tuning, prefix tuning, bottleneck adapters, Compacter, the adapters library's LoRA, (IA)^3 and prefix tuning, and its unions MAM and UniPELT).", default: RunMethod.poly.rawValue),
            .int("skills", only("skills", "Skills (LoRAs) per adapted layer"), range: 1...4096, default: 6),
            .int("splits", only("splits", "Routing blocks per skill (MHR heads)"), range: 1...4096,
                 note: defaultSplits.map { "\($0.splits) for \($0.method.rawValue)" }.joined(separator: ", ")),
            .int("rank", only("rank", "LoRA rank (of each skill)"), range: 1...4096, default: 2),
            .int("virtual-tokens", only("virtual-tokens", "Virtual tokens (prefix positions) learned"), range: 1...4096, default: 3),
            .positive("density", only("density", "Fraction of the targeted weights that trains"), default: 0.05),
            .choice("selection", SparseConfig.Selection.allCases.map(\.rawValue),
                    only("selection", "Train the largest |w|, or the largest Fisher information over \(fisherBatches) training batches (FishMask)"),
                    default: SparseConfig.Selection.magnitude.rawValue),
            .positive("reduction-factor", only("reduction-factor", "Hidden size / bottleneck width"),
                      note: "the adapters library's (16; 2 for par-bn; 32 for compacter, compacter-pp), at most hidden size / 8"),
            .flag("gating", only("gating", "A learned gate per sample scales the adapter (the adapters library's use_gating, UniPELT's gates)")),
            .flag("task-gates", only("task-gates", "Gates read a learned table of task logits instead of the input: each task learns which method it uses (implies --gating)")),
            .mixing(default: .outputs, only("mixing", "Mix skill parameters (PEFT) or skill outputs")),
            .choice("feedforward", feedforwardChoices.map(\.name),
                    only("feedforward", "Targets IA3 scales at the input (PEFT's feedforward_modules), not the output"),
                    default: "fc2"),
            .int("steps", "Optimizer steps.", range: 1...10_000_000, default: training.steps),
            .int("batch-size", "Samples per step.", range: 1...1_000_000, note: "\(training.batchSize); \(textBatchSize) for text runs"),
            .positive("lr", "Learning rate of the adapter (the skills of poly, mhr).", default: training.learningRate),
            .positive("router-lr", only("router-lr", "Learning rate of the router logits"), default: training.routerLearningRate),
            .int("eval-every", "Validation interval in steps (0: only at the end).", range: 0...Int.max, default: training.evalEvery),
            .seed("Seed of the data, the initialisation and the batch order."),
            .text("data", "<file>", "Your multitask data (.jsonl or .csv) instead of the built-in tasks; with --model, text (.jsonl)."),
            .flag("text", "Train on the built-in text classification tasks, on a tiny BERT the command pre-trains (no files needed)."),
            .flag("text-to-text", "Train on the built-in text-to-text tasks, on a tiny T5 the command pre-trains (no files needed)."),
            .text("model", "<dir>", "A BERT or T5 folder (config.json, model.safetensors, tokenizer.json) to adapt on --data: JSONL lines {\"task\", \"text\", \"label\"} (BERT) or {\"task\", \"source\", \"target\"} (T5)."),
            .text("targets", "<names>", "Modules to adapt, comma-separated; text runs only.",
                  note: "PEFT's: query,value (BERT), q,v (T5); attention and feed-forward for the built-in models"),
            .int("max-length", "Tokens per text (T5: per source), special tokens included; text runs only.", range: 1...Tokenizer.maxPaddedLength,
                 note: "the tokenizer's truncation, else the model's positions or 512"),
            .int("max-target-length", "Tokens per target, and per generation; text-to-text runs only.", range: 1...Tokenizer.maxPaddedLength,
                 default: 128),
            .choice("long-texts", ["truncate", "refuse"], "Texts longer than --max-length: cut, or an error naming the line; text runs only.",
                    default: "truncate"),
            .choice("heads", ["shared", "per-task"], "One label space for all tasks, or one classifier head per task; text runs only.",
                    default: "shared"),
            .flag("group-by-length", "Batch texts of similar length together: less padding, less random batches; text runs only."),
            .text("output", "<dir>", "Run folder.", note: outputRoot + "/<timestamp>"),
            .flag("overwrite", "Replace the run already in --output (every file of it) instead of refusing."),
            .text("resume", "<dir>", "Continue an interrupted run in <dir> (its settings are reused)."),
            .int("checkpoint-every", "Checkpoint every n steps (0: only on a signal and at the end).", range: 0...Int.max,
                 default: 1000),
            .int("checkpoint-seconds", "Also checkpoint when this many seconds passed since the last (0: never).",
                 range: 0...1_000_000, default: 60),
            .allowNonFinite,
            .int("stop-after", "Stop after n steps as if interrupted (checkpoint, exit 130); for testing resume.", range: 1...Int.max),
            .flag("no-baseline", "Skip the shared-LoRA baseline of the same size (trained for poly, mhr)."),
            .flag("quiet", "Print only the summary, no progress."),
            .flag("json", "Print progress and the summary as JSON lines."),
        ]
    }()

    /// An option's help with the methods it applies to (`methodOptions`): `"<help>; poly, mhr only."`.
    static func only(_ option: String, _ help: String) -> String {
        guard let methods = methodOptions.first(where: { $0.option == option })?.methods else {
            preconditionFailure("TrainCommand: '--\(option)' is not in methodOptions")
        }
        return help + "; " + methods.map(\.rawValue).joined(separator: ", ") + " only."
    }

    static func validate(_ args: ParsedArguments) throws {
        if args.isGiven("resume") {
            if let other = (Array(args.values.keys) + args.flags).sorted().first(where: { !resumable.contains($0) }) {
                throw CLIError.usage("'--\(other)' cannot be combined with '--resume' (the run's saved settings are used)", hint: args.hint)
            }
            return
        }
        let method = args.method
        if args.isGiven("model") && !args.isGiven("data") {
            throw CLIError.usage("'--model' needs '--data <file.jsonl>' (lines {\"task\": ..., \"text\": ..., \"label\": ...})", hint: args.hint)
        }
        for builtIn in ["text", "text-to-text"] where args.flag(builtIn) {
            if let other = ["data", "model", "text", "text-to-text"].first(where: { $0 != builtIn && (args.isGiven($0) || args.flag($0)) }) {
                throw CLIError.usage("'--\(builtIn)' trains on built-in text tasks; it cannot be combined with '--\(other)'", hint: args.hint)
            }
        }
        let isText = args.flag("text") || args.flag("text-to-text") || args.isGiven("model")
        if !isText, let option = textOptions.first(where: { args.isGiven($0) || args.flag($0) }) {
            throw CLIError.usage("'--\(option)' applies to text runs ('--text', '--text-to-text' or '--model <dir>')", hint: args.hint)
        }
        if isText && args.isGiven("feedforward") {
            throw CLIError.usage("'--feedforward' applies to the built-in numeric network; text runs take IA3's feed-forward "
                + "modules from PEFT's defaults (BERT: output.dense, T5: wo)", hint: args.hint)
        }
        if method.needsText && !isText {
            throw CLIError.usage("'--method \(method.rawValue)' needs a transformer: add '--text', '--text-to-text' or "
                + "'--model <dir> --data <file>'", hint: args.hint)
        }
        if method.placesItself && args.isGiven("targets") {
            let what = method.isBottleneck ? "places adapters after the model's sublayers"
                : method.isPromptLearning ? "adapts the model's inputs" : "places itself by location in the model's layers"
            throw CLIError.usage("'--targets' does not apply to \(method.rawValue), which \(what), not its modules", hint: args.hint)
        }
        if let targets = args.string("targets"), Self.list(targets).isEmpty {
            throw CLIError.usage("'--targets' needs module names separated by commas, got '\(targets)'", hint: args.hint)
        }
        for (option, methods) in methodOptions where (args.isGiven(option) || args.flag(option)) && !methods.contains(method) {
            let names = methods.map(\.rawValue)
            let list = names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + names.last!
            throw CLIError.usage("'--\(option)' applies to \(list), not \(method.rawValue)", hint: args.hint)
        }
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let json = args.flag("json")
        let (dir, resuming) = destination(args)
        // A new run's options and data are checked before the folder is touched; a resumed run is read under the lock.
        let newSpec = resuming ? nil : try plan(args)
        let folder = try RunFolder.claim(dir, resuming: resuming, overwrite: args.flag("overwrite"))
        defer { folder.release() }
        // From here on SIGINT / SIGTERM stop the run at the next step boundary, after which it is saved.
        let interrupt = InterruptFlag()
        interrupt.install()
        defer { interrupt.stop() }
        var spec = try newSpec ?? RunSpec.read(from: dir)
        if !json && !args.flag("quiet") && spec.text?.modelPath == nil && spec.text != nil
            && AtomicDirectory.resolve(dir.appendingPathComponent(TextBase.folderName)) == nil {
            console.print("Pre-training the built-in tiny \(spec.text!.kind == .classification ? "BERT" : "T5") (saved as \(dir.path)/\(TextBase.folderName))")
        }
        let work = try spec.workload(dir: dir)
        let peft = work.peft
        if spec.selection == .fisher && spec.budgetPattern == nil {
            spec.budgetPattern = try selectByFisher(peft, work.objective, training: spec.training)
        }
        let trainer = try Trainer(objective: work.objective, parameters: peft.trainableParameters(), configuration: spec.training)
        let restored = resuming ? try RunCheckpoint.restore(from: dir, peft: peft, trainer: trainer,
                                                            allowNonFinite: args.flag("allow-non-finite"), console: console) : false
        try RunCheckpoint.begin(dir, spec: spec, workload: work)
        if !json && !args.flag("quiet") {
            let what = spec.dataPath.map { "\($0)" } ?? (spec.text == nil ? "built-in data" : "built-in \(spec.text!.kind == .classification ? "text" : "text-to-text") data")
            let verb = !resuming ? "Training" : restored ? "Resuming at step \(trainer.step)" : "Starting again (no checkpoint yet)"
            console.print("\(verb) \(describe(spec)) on \(what): \(spec.taskNames.count) tasks, \(groupThousands(work.trainingSamples)) training samples")
            console.print(peft.parameterSummary())
        }
        let progress = ProgressLine(console: console, total: spec.training.steps, mode: json ? .json : nil)
        let quiet = args.flag("quiet")
        var lastValidation: Float?
        let stopAfter = args.optionalInt("stop-after") ?? Int.max
        var schedule = CheckpointSchedule(steps: args.int("checkpoint-every"), seconds: Double(args.int("checkpoint-seconds")),
                                          startStep: trainer.step, now: CheckpointSchedule.now())
        var stopAfterReached = trainer.step >= stopAfter
        do {
            try trainer.run(shouldStop: { interrupt.isRaised || stopAfterReached }) { event in
                switch event {
                case let .step(step, total, loss):
                    if step >= stopAfter { stopAfterReached = true }
                    guard !quiet else { return }
                    if step == total { progress.finish(step: step, metrics: ["loss": Double(loss)]) } else {
                        progress.update(step: step, metrics: ["loss": Double(loss)])
                    }
                case let .validation(step, loss, perTask):
                    lastValidation = loss
                    if json {
                        let tasks = perTask.keys.sorted().map { (spec.taskNames[$0], JSONField.shortest(Double(perTask[$0]!))) }
                        console.print(JSONField.line([("event", .string("validation")), ("step", .int(step)),
                                                      ("loss", .shortest(Double(loss))), ("tasks", .object(tasks))]))
                    } else if !quiet, let best = perTask.min(by: { $0.value < $1.value }), let worst = perTask.max(by: { $0.value < $1.value }) {
                        progress.note("validation at step \(step): \(work.lossName) \(formatFixed(Double(loss), digits: 5))  (best \(spec.taskNames[best.key]) \(formatFixed(Double(best.value), digits: 5)), worst \(spec.taskNames[worst.key]) \(formatFixed(Double(worst.value), digits: 5)))")
                    }
                case let .completed(step):
                    if step < spec.training.steps && !interrupt.isRaised && !stopAfterReached && schedule.isDue(step: step, now: CheckpointSchedule.now()) {
                        try RunCheckpoint.save(to: dir, peft: peft, trainer: trainer)
                        schedule.saved(step: step, now: CheckpointSchedule.now())
                    }
                }
            }
        } catch let e as DivergenceError {
            // The diverged step changed nothing: the trainer is at the last good step, which becomes the checkpoint.
            try RunCheckpoint.save(to: dir, peft: peft, trainer: trainer)
            throw CLIError.runtime("training diverged at \(e), so that step was not applied; the last good state (step "
                + "\(trainer.step)) is saved in \(dir.path)/\(RunCheckpoint.directoryName). Resuming would repeat the same "
                + "steps: train again with a lower --lr or --router-lr (and --overwrite)")
        }
        try RunCheckpoint.save(to: dir, peft: peft, trainer: trainer)
        if trainer.step < spec.training.steps, let signal = interrupt.signal ?? (stopAfterReached ? SIGINT : nil) {
            console.print("\nInterrupted at step \(trainer.step): checkpoint saved; continue with 'polyctl train --resume \(dir.path)'")
            throw CLIError.interrupted(signal: signal)
        }
        // The run is saved and complete; a signal during the baseline skips the baseline, not the report, and the
        // command then still exits as interrupted.
        let baseline = !spec.method.isRouted || args.flag("no-baseline") || interrupt.isRaised ? nil
            : try work.trainBaseline(shouldStop: { interrupt.isRaised })
        if spec.method.isRouted && !args.flag("no-baseline") && baseline == nil && !json {
            console.print("\nInterrupted: the shared-LoRA baseline was skipped")
        }
        try TrainReport(spec: spec, workload: work, trainer: trainer, validation: lastValidation, dir: dir,
                        baseline: baseline).emit(console, json: json)
        if let signal = interrupt.signal { throw CLIError.interrupted(signal: signal) }
    }

    /// Chooses sparse fine-tuning's entries by Fisher information over the first `fisherBatches` batches of a seeded
    /// pass over the training set, before the optimizer exists; returns the entries per layer (saved in the run spec,
    /// so `--resume` attaches the same layout).
    static func selectByFisher(_ peft: PeftModel, _ objective: any Objective, training: TrainingConfiguration) throws -> [String: Int] {
        var rng = Xoshiro256(seed: training.seed ^ 0x5EED_F15E)
        var order = Array(0..<objective.count)
        order.shuffle(using: &rng)
        let size = Swift.max(1, Swift.min(training.batchSize, objective.count))
        let batches = Swift.max(1, Swift.min(fisherBatches, objective.count / size))
        try peft.selectSparseMask(fisherBatches: batches) { b in
            try objective.loss(batch: Array(order[(b * size)..<((b + 1) * size)]), Context(mode: .eval))
        }
        return (peft.config as? SparseConfig)?.budgetPattern ?? [:]
    }

    static func describe(_ s: RunSpec) -> String {
        switch s.method {
        case .poly, .mhr:
            return "\(s.method.label) (\(s.skills) skills, \(s.splits) split\(s.splits == 1 ? "" : "s"), rank \(s.rank), \(s.mixing.rawValue) mixing)"
        case .lora, .dora:
            return "a shared \(s.method.label) (rank \(s.rank))"
        case .ia3:
            let ff = s.feedforward ?? []
            return "a shared IA3 (feed-forward: \(ff.isEmpty ? "none" : ff.joined(separator: ", ")))"
        case .sparse:
            let targets = s.text?.targets ?? RunSpec.targets
            return "a shared \(s.method.label) (density \(formatFixed(s.density ?? 0, digits: 4)) of \(targets.joined(separator: ", ")), by \((s.selection ?? .magnitude) == .fisher ? "Fisher information" : "magnitude"))"
        case .beft, .lnTuning, .bitfit, .ssf:
            let targets = s.text?.targets ?? RunSpec.targets
            return "a shared \(s.method.label) (\(targets.isEmpty ? "every bias" : targets.joined(separator: ", ")))"
        case .promptTuning, .pTuning, .prefixTuning:
            return "a shared \(s.method.label) (\(s.virtualTokens ?? 0) virtual tokens)"
        case .seqBn, .doubleSeqBn, .parBn, .compacter, .compacterPP:
            let f = s.reductionFactor ?? 0
            let width = (try? (s.adapterConfig() as? BnConfig)?.bottleneckSize(hidden: s.hiddenDim, layer: 0)).flatMap { $0 }
                .map { ", bottleneck \($0)" } ?? ""
            return "a shared \(s.method.label) (reduction factor \(formatFixed(f, digits: f == f.rounded() ? 0 : 2))\(width)"
                + "\(s.gating == true ? ", gated" : ""))"
        case .adaptersLoRA, .adaptersIA3:
            let places = (s.adapterConfig() as? AdaptersLoRAConfig).map { c in
                c.locations.map { $0 == .selfAttention ? "attention " + c.attnMatrices.joined(separator: ", ") : $0.rawValue }
                    .joined(separator: "; ") } ?? ""
            return "a shared \(s.method.label) (\(s.method == .adaptersLoRA ? "rank \(s.rank), " : "")\(places)\(gates(s)))"
        case .adaptersPrefix:
            return "a shared \(s.method.label) (prefix length \(s.virtualTokens ?? 0)\(gates(s)))"
        case .mam, .unipelt:
            let f = s.reductionFactor ?? 0
            let parts = s.method == .mam ? "prefix length \(s.virtualTokens ?? 0), parallel adapter" : "prefix length \(s.virtualTokens ?? 0), sequential adapter"
            return "a shared \(s.method.label) (\(parts) with reduction factor \(formatFixed(f, digits: f == f.rounded() ? 0 : 2))"
                + "\(s.method == .unipelt ? ", LoRA rank \(s.rank)" : "")\(gates(s)))"
        }
    }

    /// How a run's gates read: by task, by the input, or none.
    static func gates(_ s: RunSpec) -> String {
        s.taskGates == true ? ", gated by task" : s.isGated ? ", gated" : ""
    }

    /// The run folder and whether the run in it is continued (`--resume`).
    static func destination(_ args: ParsedArguments) -> (URL, Bool) {
        if let resume = args.string("resume") { return (URL(fileURLWithPath: resume), true) }
        return (URL(fileURLWithPath: args.string("output") ?? defaultOutput()), false)
    }

    /// A new run from the options.
    static func plan(_ args: ParsedArguments) throws -> RunSpec {
        let method = args.method
        let isText = args.flag("text") || args.flag("text-to-text") || args.isGiven("model")
        var training = TrainingConfiguration()
        training.steps = args.int("steps")
        training.batchSize = args.optionalInt("batch-size") ?? (isText ? textBatchSize : training.batchSize)
        training.learningRate = args.float("lr")
        training.routerLearningRate = args.float("router-lr")
        training.evalEvery = args.int("eval-every")
        training.warmupSteps = Swift.min(training.warmupSteps, training.steps / 10)
        training.groupByLength = args.flag("group-by-length")
        let seed = args.int("seed")
        training.seed = UInt64(seed)
        // The run folder records the data file's and the model's absolute paths, so `eval` finds them from anywhere.
        let dataPath = args.string("data").map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let splits = args.optionalInt("splits") ?? defaultSplits.first { $0.method == method }?.splits ?? 1
        var spec = RunSpec(method: method, mixing: args.mixing, skills: args.int("skills"), splits: splits,
                           rank: args.int("rank"), dataPath: dataPath, dataSeed: UInt64(seed), hiddenDim: 64, taskNames: [],
                           training: training, feedforward: nil)
        spec.virtualTokens = method.takesVirtualTokens ? args.int("virtual-tokens") : nil
        spec.density = method == .sparse ? args.double("density") : nil
        spec.taskGates = method.takesTaskGates ? args.flag("task-gates") : nil
        spec.gating = method.isGateable ? args.flag("gating") || args.flag("task-gates") : nil
        if method == .unipelt && !args.isGiven("rank") { spec.rank = 8 }      // UniPELTConfig's LoRA: r 8, alpha 2
        spec.selection = method == .sparse ? SparseConfig.Selection(rawValue: args.choice("selection")) : nil
        if isText { return try planText(args, spec) }
        // Task names come from the data; for a file they are known only after reading it.
        if let dataPath = args.string("data") {
            spec.taskNames = try MultitaskDataFile.read(dataPath).taskNames
        } else {
            var c = SyntheticTasks.Configuration()
            c.seed = UInt64(seed)
            spec.taskNames = try SyntheticTasks(c).taskNames
        }
        spec.feedforward = method == .ia3 ? feedforwardChoices.first { $0.name == args.choice("feedforward") }!.modules : nil
        return spec
    }

    /// A new text run: the model's kind (BERT: classification, T5: text-to-text), tokenizer and positions, the
    /// data's tasks and labels (read once here, so a bad file is reported before the run folder is touched).
    static func planText(_ args: ParsedArguments, _ numeric: RunSpec) throws -> RunSpec {
        var spec = numeric
        let modelPath = args.string("model").map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let kind = try modelPath.map { try TextBase.kind(of: URL(fileURLWithPath: $0)) }
            ?? (args.flag("text-to-text") ? .generation : .classification)
        if kind == .generation, let option = ["heads"].first(where: args.isGiven) {
            throw CLIError.runtime("'--\(option)' is for classification; \(modelPath ?? "--text-to-text") trains a T5 (text-to-text)")
        }
        if kind == .classification && args.isGiven("max-target-length") {
            throw CLIError.runtime("'--max-target-length' is for text-to-text; \(modelPath ?? "--text") trains a BERT classifier")
        }
        let tokenizer: Tokenizer, maxPositions: Int?, trainPooler: Bool
        if let modelPath {
            let base = try TextBase.load(URL(fileURLWithPath: modelPath), kind: kind, numLabels: nil, seed: 0)
            tokenizer = base.tokenizer
            trainPooler = base.newPooler
            if kind == .classification {
                let config = try base.classifier.config
                (maxPositions, spec.hiddenDim) = (config.maxPositionEmbeddings, config.hiddenSize)
            } else {
                (maxPositions, spec.hiddenDim) = (nil, try base.generator.config.dModel)
            }
        } else if kind == .classification {
            let config = try BertConfig(json: SyntheticTextTasks.modelConfig)
            (tokenizer, maxPositions, trainPooler) = (try SyntheticTextTasks.makeTokenizer(), config.maxPositionEmbeddings, false)
            spec.hiddenDim = config.hiddenSize
        } else {
            (tokenizer, maxPositions, trainPooler) = (try SyntheticTextToTextTasks.makeTokenizer(), nil, false)
            spec.hiddenDim = try T5Config(json: SyntheticTextToTextTasks.modelConfig).dModel
        }
        if let preset = spec.method.bottleneckPart, case .uniform(let own) = preset.reductionFactor {
            // The preset's factor, unless it would leave a bottleneck narrower than 8 (the built-in models are 32 wide).
            spec.reductionFactor = args.isGiven("reduction-factor") ? args.double("reduction-factor")
                : Swift.min(own, Swift.max(1, Double(spec.hiddenDim / 8)))
        }
        // T5's positions are relative: no limit but the tokenizer's truncation (else 512, T5's training length).
        // Virtual tokens and prefix positions take absolute positions (BERT) before the text's.
        let virtual = kind == .classification && spec.method.isPromptLearning ? spec.virtualTokens ?? 0 : 0
        let limit = maxPositions.map { $0 - virtual } ?? Tokenizer.maxPaddedLength
        guard limit > 0 else {
            throw CLIError.runtime("--virtual-tokens \(virtual) leaves no room in the model's \(maxPositions!) positions")
        }
        let maxLength = args.optionalInt("max-length") ?? Swift.min(tokenizer.truncation?.maxLength ?? maxPositions ?? 512, limit)
        guard maxLength <= limit else {
            throw CLIError.runtime("--max-length \(maxLength) is more than the model's \(limit) positions (max_position_embeddings"
                + (virtual > 0 ? " \(maxPositions!) less \(virtual) virtual tokens)" : ")"))
        }
        let truncate = args.choice("long-texts") == "truncate"
        let targets = args.string("targets").map(list) ?? TextRunSpec.defaultTargets(kind, builtIn: modelPath == nil, method: spec.method)
        if spec.method == .ia3 { spec.feedforward = DefaultTargets.ia3Feedforward[kind == .classification ? "bert" : "t5"]!.filter(targets.contains) }
        var text = TextRunSpec(kind: kind, modelPath: modelPath, targets: targets, maxLength: maxLength,
                               maxTargetLength: kind == .generation ? args.int("max-target-length") : nil, truncate: truncate,
                               labelNames: [], heads: nil, trainPooler: trainPooler)
        switch kind {
        case .classification:
            let data: TextClassificationData
            if let dataPath = args.string("data") {
                data = try TextRunData.read(dataPath, text, tokenizer: tokenizer, taskNames: nil, labelNames: nil)
            } else {
                data = try SyntheticTextTasks(seed: spec.dataSeed, samplesPerTask: TextRunData.builtInSamples).train
            }
            if virtual > 0, let positions = maxPositions, let longest = data.samples.map(\.ids.count).max(), longest + virtual > positions {
                throw CLIError.runtime("--virtual-tokens \(virtual) and texts of up to \(longest) tokens need \(longest + virtual) positions; "
                    + "the model has \(positions) (use --virtual-tokens \(Swift.max(positions - longest, 0)) or fewer)")
            }
            spec.taskNames = data.taskNames
            text.labelNames = data.labelNames
            text.heads = args.choice("heads") == "per-task" ? TaskHeads(data) : nil
        case .generation:
            spec.taskNames = try args.string("data").map { try TextToTextRunData.read($0, text, tokenizer: tokenizer, taskNames: nil).taskNames }
                ?? SyntheticTextToTextTasks.taskNames
        }
        spec.text = text
        return spec
    }

    /// `"a, b,c"` -> `["a", "b", "c"]` (empty parts dropped).
    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func defaultOutput() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return outputRoot + "/" + f.string(from: Date())
    }
}
