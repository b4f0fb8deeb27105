import Foundation
import PolyPEFT

/// `polyctl train`: trains Poly, MHR or a shared LoRA on the built-in multitask data (or `--data`), shows progress,
/// the learned allocation and how it matches the truth, and writes a PEFT adapter plus everything resume needs.
enum TrainCommand: Subcommand {
    static let name = "train"
    static let overview = "Train Poly / MHR / LoRA adapters on multitask data (built-in by default)."
    static let usage = "train [--method poly|mhr|lora] [--steps <n>] [--output <dir>] [options]"
    static let options: [OptionSpec] = [
        OptionSpec("method", "<poly|mhr|lora>", "Adapter: Poly, MHR (Poly with splits) or one shared LoRA.", default: "poly"),
        OptionSpec("skills", "<n>", "Skills (LoRAs) per adapted layer.", default: "6"),
        OptionSpec("splits", "<n>", "Routing blocks per skill (MHR heads).", default: "1 for poly, 4 for mhr"),
        OptionSpec("rank", "<n>", "LoRA rank of each skill.", default: "2"),
        OptionSpec("mixing", "<parameters|outputs>", "Mix skill parameters (PEFT) or skill outputs.", default: "outputs"),
        OptionSpec("steps", "<n>", "Optimizer steps.", default: "2000"),
        OptionSpec("batch-size", "<n>", "Samples per step.", default: "256"),
        OptionSpec("lr", "<x>", "Learning rate of the skills.", default: "0.01"),
        OptionSpec("router-lr", "<x>", "Learning rate of the router logits.", default: "0.1"),
        OptionSpec("eval-every", "<n>", "Validation interval in steps (0: only at the end).", default: "250"),
        OptionSpec("seed", "<n>", "Seed of the data, the initialisation and the batch order.", default: "0"),
        OptionSpec("data", "<file>", "Your multitask data (.jsonl or .csv) instead of the built-in tasks."),
        OptionSpec("output", "<dir>", "Run folder.", default: "runs/<timestamp>"),
        OptionSpec("resume", "<dir>", "Continue an interrupted run in <dir> (its settings are reused)."),
        OptionSpec("stop-after", "<n>", "Stop after n steps as if interrupted (checkpoint, exit 130); for testing resume."),
        OptionSpec("no-baseline", nil, "Skip training the shared-LoRA baseline of the same size."),
        OptionSpec("quiet", nil, "Print only the summary, no progress."),
        OptionSpec("json", nil, "Print progress and the summary as JSON lines."),
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let json = args.flag("json")
        let (spec, dir, resuming) = try plan(args)
        let data = try RunData.load(dataPath: spec.dataPath, seed: spec.dataSeed, hiddenDim: spec.hiddenDim)
        let base = try MLPShape.model(data.baseWeights)
        var initRNG = Xoshiro256(seed: spec.dataSeed &+ 7)
        let peft = try PeftModel(wrapping: base, config: spec.adapterConfig(), using: &initRNG)
        let trainer = try Trainer(objective: RegressionObjective(model: base, data: data.train),
                                  parameters: peft.trainableAdapterParameters().map { ($0.key, $0.parameter) },
                                  configuration: spec.training)
        if resuming { try RunCheckpoint.restore(from: dir, peft: peft, trainer: trainer) }
        if !json && !args.flag("quiet") {
            let what = spec.dataPath.map { "\($0)" } ?? "built-in data"
            console.print("\(resuming ? "Resuming" : "Training") \(describe(spec)) on \(what): \(spec.taskNames.count) tasks, \(groupThousands(data.train.count)) training samples")
            console.print(peft.parameterSummary())
        }
        let interrupt = InterruptFlag()
        interrupt.install()
        defer { interrupt.stop() }
        let progress = ProgressLine(console: console, total: spec.training.steps, mode: json ? .json : nil)
        let quiet = args.flag("quiet")
        var lastValidation: Float?
        let stopAfter = try args.int("stop-after", default: Int.max, range: 1...Int.max)
        if trainer.step >= stopAfter { interrupt.raise() }
        try trainer.run(validation: data.validation, shouldStop: { interrupt.isRaised }) { event in
            if case let .step(step, _, _) = event, step >= stopAfter { interrupt.raise() }
            switch event {
            case let .step(step, total, loss):
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
                    progress.note("validation at step \(step): MSE \(formatFixed(Double(loss), digits: 5))  (best \(spec.taskNames[best.key]) \(formatFixed(Double(best.value), digits: 5)), worst \(spec.taskNames[worst.key]) \(formatFixed(Double(worst.value), digits: 5)))")
                }
            case .checkpoint: break
            }
        }
        try RunCheckpoint.save(to: dir, spec: spec, peft: peft, trainer: trainer, baseWeights: data.baseWeights)
        if interrupt.isRaised && trainer.step < spec.training.steps {
            console.print("\nInterrupted at step \(trainer.step): checkpoint saved; continue with 'polyctl train --resume \(dir.path)'")
            throw CLIError.interrupted
        }
        let baseline = spec.method == "lora" || args.flag("no-baseline") ? nil : try trainBaseline(spec, data)
        try TrainReport(spec: spec, data: data, peft: peft, trainer: trainer, validation: lastValidation, dir: dir,
                        baseline: baseline).emit(console, json: json)
    }

    /// A single LoRA shared by all tasks, of the same size as the skill inventory (rank skills x rank), trained with
    /// the same settings: the test loss it reaches, and its rank.
    static func trainBaseline(_ spec: RunSpec, _ data: RunData) throws -> (loss: Float, rank: Int) {
        let rank = spec.skills * spec.rank
        var shared = spec
        shared.method = "lora"
        shared.rank = rank
        let trained = try TrainedAdapter.train(shared.adapterConfig(), baseWeights: data.baseWeights, train: data.train,
                                               test: data.test, training: spec.training, initSeed: spec.dataSeed &+ 11)
        return (trained.testLoss, rank)
    }

    static func describe(_ s: RunSpec) -> String {
        if s.method == "lora" { return "a shared LoRA (rank \(s.rank))" }
        return "\(s.method == "mhr" ? "MHR" : "Poly") (\(s.skills) skills, \(s.splits) split\(s.splits == 1 ? "" : "s"), rank \(s.rank), \(s.mixing.rawValue) mixing)"
    }

    /// The run to perform: a new spec from the options, or the saved one with `--resume`.
    static func plan(_ args: ParsedArguments) throws -> (RunSpec, URL, Bool) {
        if let resume = args.string("resume") {
            let allowed: Set<String> = ["resume", "quiet", "json", "stop-after", "no-baseline"]
            if let other = args.values.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw CLIError.usage("'--\(other)' cannot be combined with '--resume' (the run's saved settings are used)", hint: "see 'polyctl train --help'")
            }
            let dir = URL(fileURLWithPath: resume)
            return (try RunSpec.read(from: dir), dir, true)
        }
        let method = try args.choice("method", ["poly", "mhr", "lora"], default: "poly")
        let mixing = MixingMode(rawValue: try args.choice("mixing", MixingMode.allCases.map(\.rawValue), default: "outputs"))!
        var training = TrainingConfiguration()
        training.steps = try args.int("steps", default: training.steps, range: 1...10_000_000)
        training.batchSize = try args.int("batch-size", default: training.batchSize, range: 1...1_000_000)
        training.learningRate = Float(try args.double("lr", default: Double(training.learningRate)))
        training.routerLearningRate = Float(try args.double("router-lr", default: Double(training.routerLearningRate)))
        training.evalEvery = try args.int("eval-every", default: training.evalEvery, range: 0...Int.max)
        training.warmupSteps = Swift.min(training.warmupSteps, training.steps / 10)
        let seed = try args.int("seed", default: 0, range: 0...Int.max)
        training.seed = UInt64(seed)
        let dataPath = args.string("data")
        // Task names come from the data; for a file they are known only after reading it.
        let names: [String]
        if let dataPath {
            names = try MultitaskDataFile.read(dataPath).taskNames
        } else {
            var c = SyntheticTasks.Configuration()
            c.seed = UInt64(seed)
            names = try SyntheticTasks(c).taskNames
        }
        let spec = RunSpec(method: method, mixing: mixing, skills: try args.int("skills", default: 6, range: 1...4096),
                           splits: try args.int("splits", default: method == "mhr" ? 4 : 1, range: 1...4096),
                           rank: try args.int("rank", default: 2, range: 1...4096), dataPath: dataPath,
                           dataSeed: UInt64(seed), hiddenDim: 64, taskNames: names, training: training)
        if method == "lora" && (args.string("skills") != nil || args.string("splits") != nil) {
            throw CLIError.usage("'--skills' and '--splits' apply to poly and mhr, not lora", hint: "see 'polyctl train --help'")
        }
        let dir = URL(fileURLWithPath: args.string("output") ?? defaultOutput())
        return (spec, dir, false)
    }

    static func defaultOutput() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return "runs/" + f.string(from: Date())
    }
}
