import Foundation
import PolyPEFT

/// `polyctl bench train`: steps per second of `polyctl train`'s default model and data.
///
/// ```
/// model: MLP 32 -> 64 -> 8 (ReLU), Poly on fc1 and fc2: 18 tasks, 6 skills, rank 2, 1 split
/// step:  batch of 256 (Trainer's seeded order) -> train-mode forward -> MSE -> backward -> clip 1 -> AdamW (2 groups)
/// steps_per_s = steps / wall time of the steps (after `--warmup` untimed steps)
/// ```
enum BenchTrain: Subcommand {
    static let name = "bench train"
    static let overview = "Time training steps of the default 'polyctl train' model on the built-in data."
    static let usage = "bench train [--steps <n>] [--mixing parameters|outputs] [--threads <t>] [--json] [--dump <file>]"
    static let options: [OptionSpec] = [
        .int("steps", "Timed optimizer steps.", range: 1...10_000_000, default: 500),
        .int("warmup", "Untimed steps before timing.", range: 0...10_000_000, default: 20),
        .mixing(default: .outputs),
        .int("batch-size", "Samples per step.", range: 1...1_000_000, default: TrainingConfiguration().batchSize),
        .strategy,
        .threads,
        .seed("Seed of data, initialisation and batch order."),
        .dump("Write weights, data, batch order and first outputs to a safetensors file."),
        .benchJSON,
    ]

    static func validate(_ args: ParsedArguments) throws {}

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let steps = args.int("steps")
        let warmup = args.int("warmup")
        let mixing = args.mixing, strategy = args.strategy
        let threads = args.threads
        let seed = UInt64(args.int("seed"))
        let dumpPath = args.string("dump")
        var training = TrainingConfiguration()
        training.steps = warmup + steps
        training.batchSize = args.int("batch-size")
        training.evalEvery = 0
        training.warmupSteps = Swift.min(training.warmupSteps, training.steps / 10)
        training.seed = seed

        let data = try RunData.load(dataPath: nil, seed: seed, hiddenDim: 64)
        let base = try MLPShape.model(data.baseWeights)
        let spec = RunSpec(method: .poly, mixing: mixing, skills: 6, splits: 1, rank: 2, dataPath: nil, dataSeed: seed,
                           hiddenDim: 64, taskNames: data.train.taskNames, training: training)
        var initRNG = Xoshiro256(seed: seed &+ 7)
        let peft = try PeftModel(wrapping: base, config: spec.adapterConfig(), using: &initRNG)
        for (_, layer) in peft.adapters { (layer as? PolyLinear)?.strategy = strategy }
        let trainer = try Trainer(objective: RegressionObjective(model: base, data: data.train),
                                  parameters: peft.trainableParameters(), configuration: training)
        let first = data.train.subset(trainer.batch(at: 0))
        let yFirst = try base.forward(Variable(first.inputs), Context.inference(taskIDs: first.taskIDs)).value
        if let dumpPath {
            var t = try peft.adapterTensors()
            for (k, v) in data.baseWeights { t["base." + k] = v }
            t["train.inputs"] = data.train.inputs
            t["train.targets"] = data.train.targets
            t["train.task_ids"] = BenchSupport.taskTensor(data.train.taskIDs)
            let order = (0..<training.steps).flatMap { trainer.batch(at: $0) }
            t["batches"] = Tensor(order.map(Float.init), shape: [training.steps, order.count / training.steps])
            t["y_first"] = yFirst
            try BenchSupport.dump(t, to: dumpPath)
        }
        var lastLoss: Float = 0
        let seconds: Double = try BenchSupport.withThreads(threads) {
            for _ in 0..<warmup { try trainer.trainStep() }
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<steps { lastLoss = try trainer.trainStep() }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        let rate = Double(steps) / seconds
        let load = BenchSupport.loadAverage()
        if args.flag("json") {
            console.print(JSONField.line([("steps", .int(steps)), ("batch_size", .int(training.batchSize)),
                ("mixing", .string(mixing.rawValue)), ("threads", .int(threads)), ("seconds", .fixed(seconds, digits: 4)),
                ("ms_per_step", .fixed(1000 / rate, digits: 4)), ("last_loss", .fixed(Double(lastLoss), digits: 6)),
                ("load", BenchSupport.loadField(load))]))
        } else {
            console.print("model:   MLP 32 -> 64 -> 8, Poly on fc1 and fc2 (18 tasks, 6 skills, rank 2, \(mixing.rawValue) mixing)")
            console.print("steps:   \(steps) timed after \(warmup) warm-up, batch \(training.batchSize), \(threads) thread\(threads == 1 ? "" : "s")\(load.map { ", load average \(BenchSupport.fmt($0, 2))" } ?? "")")
            console.print("time:    \(BenchSupport.fmt(seconds, 3)) s, \(BenchSupport.fmt(1000 / rate, 4)) ms per step, last loss \(lastLoss)")
        }
        console.print("steps_per_s=\(BenchSupport.fmt(rate, 1))")
    }
}
