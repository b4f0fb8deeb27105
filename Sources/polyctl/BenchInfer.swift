import Foundation
import PolyPEFT

/// `polyctl bench infer`: inference of the default `polyctl train` model, Poly against the base model alone.
///
/// ```
/// x: [batch, 32];  base: MLP 32 -> 64 -> 8;  Poly on fc1, fc2 (18 tasks, 6 skills, rank 2, random B)
/// base      the base MLP alone
/// mixed     Poly, sample i has task i mod 18 (every neighbour a different task)
/// single    Poly, every sample task 0, adapter applied on the fly
/// merged    Poly, every sample task 0, with task 0's update merged into the base weights (`PeftModel.merge(task:)`)
/// overhead_<case> = time(case) / time(base) - 1
/// ```
enum BenchInfer: Subcommand {
    static let name = "bench infer"
    static let overview = "Time mixed-task and single-task inference of the default model against the base model."
    static let usage = "bench infer [--batch <n>] [--mixing parameters|outputs] [--threads <t>] [--json] [--dump <file>]"
    static let options: [OptionSpec] = [
        .int("batch", "Samples per forward.", range: 1...10_000_000, default: 256),
        .mixing(default: .parameters),
        .strategy,
        .threads,
        .repeats("Timed rounds per figure (each about 20 ms of calls); the best is reported.", default: 7),
        .seed("Seed of weights and inputs."),
        .dump("Write weights, input, task ids and outputs to a safetensors file."),
        .benchJSON,
    ]

    static func validate(_ args: ParsedArguments) throws {}

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let batch = args.int("batch")
        let mixing = args.mixing, strategy = args.strategy
        let threads = args.threads
        let repeats = args.int("repeat")
        let seed = UInt64(args.int("seed"))
        let dumpPath = args.string("dump")

        let data = try RunData.load(dataPath: nil, seed: seed, hiddenDim: 64)
        let baseOnly = try MLPShape.model(data.baseWeights)
        let model = try MLPShape.model(data.baseWeights)
        let nTasks = data.train.taskNames.count
        var rng = Xoshiro256(seed: seed &+ 7)
        let config = PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: nTasks, nSkills: 6, nSplits: 1,
                                initWeights: false, mixing: mixing)
        let peft = try PeftModel(wrapping: model, config: config, using: &rng)
        for (_, layer) in peft.adapters { (layer as? PolyLinear)?.strategy = strategy }
        let x = Tensor.normal([batch, data.train.inputDim], using: &rng)              // x: [N, 32]
        let mixed = (0..<batch).map { $0 % nTasks }, single = [Int](repeating: 0, count: batch)

        var figures: [(String, Double)] = []
        try BenchSupport.withThreads(threads) {
            let yBase = try baseOnly.forward(Variable(x), Context.inference()).value
            let yMixed = try model.forward(Variable(x), Context.inference(taskIDs: mixed)).value
            let ySingle = try model.forward(Variable(x), Context.inference(taskIDs: single)).value
            try peft.merge(task: 0)
            let yMerged = try model.forward(Variable(x), Context.inference(taskIDs: single)).value
            try peft.unmerge()
            if let dumpPath {
                var t = try peft.adapterTensors()
                for (k, v) in data.baseWeights { t["base." + k] = v }
                t["x"] = x
                t["task_ids"] = BenchSupport.taskTensor(mixed)
                t["y_base"] = yBase
                t["y_mixed"] = yMixed
                t["y_single"] = ySingle
                t["y_merged"] = yMerged
                try BenchSupport.dump(t, to: dumpPath)
            }
            func time(_ body: () throws -> Void) throws -> Double {
                let once = try BenchSupport.bestMilliseconds(rounds: 1, body)
                let inner = Swift.max(1, Int(20 / Swift.max(once, 1e-3)))
                return try BenchSupport.bestMilliseconds(rounds: repeats, inner: inner, body)
            }
            figures.append(("base", try time { _ = try baseOnly.forward(Variable(x), Context.inference()) }))
            figures.append(("mixed", try time { _ = try model.forward(Variable(x), Context.inference(taskIDs: mixed)) }))
            figures.append(("single", try time { _ = try model.forward(Variable(x), Context.inference(taskIDs: single)) }))
            try peft.merge(task: 0)
            defer { try? peft.unmerge() }
            figures.append(("merged", try time { _ = try model.forward(Variable(x), Context.inference(taskIDs: single)) }))
        }
        let baseMs = figures[0].1
        let overheads = figures.dropFirst().map { ("overhead_\($0.0)", $0.1 / baseMs - 1) }
        let load = BenchSupport.loadAverage()
        if args.flag("json") {
            var pairs: [(String, JSONField)] = [("batch", .int(batch)), ("tasks", .int(nTasks)), ("mixing", .string(mixing.rawValue)),
                                                ("threads", .int(threads)), ("repeat", .int(repeats))]
            pairs += figures.map { ("\($0.0)_ms", .fixed($0.1, digits: 5)) }
            pairs += overheads.map { ($0.0, .fixed($0.1, digits: 4)) }
            pairs.append(("load", BenchSupport.loadField(load)))
            console.print(JSONField.line(pairs))
        } else {
            console.print("model:   MLP 32 -> 64 -> 8, Poly on fc1 and fc2 (\(nTasks) tasks, 6 skills, rank 2, \(mixing.rawValue) mixing)")
            console.print("input:   \(batch) samples, \(threads) thread\(threads == 1 ? "" : "s"), best of \(repeats) rounds\(load.map { ", load average \(BenchSupport.fmt($0, 2))" } ?? "")")
            for line in BenchSupport.figureLines(figures.map { ($0.0, $0.1) }) { console.print(line) }
        }
        for (k, v) in overheads { console.print("\(k)=\(BenchSupport.fmt(v, 4))") }
    }
}
