import Foundation
import PolyPEFT

/// `polyctl experiment fewshot`: few-shot transfer to the built-in data's held-out tasks at several k, for Poly and MHR
/// in full / z / mu modes, a shared LoRA of matched size and a private LoRA per task.
enum ExperimentFewShot: Subcommand {
    static let name = "experiment fewshot"
    static let overview = "Few-shot transfer to held-out tasks: Poly/MHR full, z, mu vs shared and private LoRA."
    static let usage = "experiment fewshot [--k 5,20,80] [--steps <n>] [--adapt-steps <n>] [--seed <n>]"
    static let options: [OptionSpec] = [
        .intList("k", "<list>", "Numbers of training examples of the new task.", default: [5, 20, 80]),
        .int("steps", "Multitask training steps of each starting model.", range: 1...1_000_000, default: TrainingConfiguration().steps),
        .int("adapt-steps", "Full-batch steps of each adaptation.", range: 1...1_000_000, default: FewShotSettings().steps),
        .mixing(default: .outputs, "Skill mixing of the Poly and MHR models."),
        .seed("Seed of the data and of everything else."),
    ]

    static func validate(_ args: ParsedArguments) throws {
        let pool = SyntheticTasks.Configuration().fewShotPoolSize
        if let kMax = args.intList("k").max(), kMax > pool {
            throw CLIError.usage("option '--k' allows at most \(pool) examples (the few-shot pool)", hint: args.hint)
        }
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let ks = args.intList("k")
        let seed = UInt64(args.int("seed"))
        let mixing = args.mixing
        var training = TrainingConfiguration()
        training.steps = args.int("steps")
        training.warmupSteps = Swift.min(training.warmupSteps, training.steps / 10)
        training.seed = seed
        var settings = FewShotSettings()
        settings.steps = args.int("adapt-steps")
        settings.seed = seed
        var c = SyntheticTasks.Configuration()
        c.seed = seed
        let data = try SyntheticTasks(c)
        let skills = c.nSkills, rank = 2, targets = TargetModules.names(["fc1", "fc2"])
        func poly(_ splits: Int) -> any PeftConfig {
            PolyConfig(r: rank, targetModules: targets, nTasks: data.taskNames.count, nSkills: skills, nSplits: splits, mixing: mixing)
        }
        let lora: any PeftConfig = LoraConfig(r: skills * rank, loraAlpha: Double(skills * rank), targetModules: targets)
        let polyRun = try TrainedAdapter.train(poly(1), data: data, training: training, seed: seed)
        let mhrRun = try TrainedAdapter.train(poly(4), data: data, training: training, seed: seed)
        let sharedRun = try TrainedAdapter.train(lora, data: data, training: training, seed: seed)
        let fresh = TrainedAdapter(config: lora, tensors: try freshLoRA(lora, data), baseWeights: data.baseWeights, testLoss: .nan)
        let methods: [(String, TrainedAdapter, FewShotMethod)] = [
            ("Poly full", polyRun, .full), ("Poly-z", polyRun, .routingOnly), ("Poly-mu", polyRun, .averagedSkills),
            ("MHR full", mhrRun, .full), ("MHR-z", mhrRun, .routingOnly), ("MHR-mu", mhrRun, .averagedSkills),
            ("shared LoRA", sharedRun, .sharedLoRA), ("private LoRA", fresh, .privateLoRA),
        ]
        let tasks = data.fewShotPool.tasks
        var table = TableFormatter(headers: ["method", "trainable"] + ks.map { "k=\($0)" })
        for (label, start, method) in methods {
            var row = [label, ""]
            for k in ks {
                var total: Float = 0
                for t in tasks {
                    let train = data.fewShotPool.subset(Array(data.fewShotPool.indices(ofTask: t).prefix(k)))
                    let test = data.heldOutTest.subset(data.heldOutTest.indices(ofTask: t))
                    let (mse, count) = try FewShot.adapt(method, trained: try start.copy(), train: train, test: test, settings: settings)
                    total += mse
                    row[1] = groupThousands(count)
                }
                row.append(formatFixed(Double(total / Float(tasks.count)), digits: 5))
            }
            table.addRow(row)
        }
        let base = try RegressionObjective.evaluate(try MLPShape.model(data.baseWeights), data.heldOutTest).loss
        console.print("Few-shot transfer to \(tasks.count) held-out tasks (test MSE averaged over tasks; base model alone: \(formatFixed(Double(base), digits: 5))).")
        console.print("Starting models: \(training.steps) multitask steps (\(mixing.rawValue) mixing); each adaptation: \(settings.steps) full-batch Adam steps.")
        console.write(table.render())
    }

    /// The tensors of a freshly initialised LoRA (B = 0, so it starts as the base model).
    static func freshLoRA(_ config: any PeftConfig, _ data: SyntheticTasks) throws -> [String: Tensor] {
        var g = Xoshiro256(seed: data.configuration.seed &+ 3)
        return try PeftModel(wrapping: try MLPShape.model(data.baseWeights), config: config, using: &g).adapterTensors()
    }
}
