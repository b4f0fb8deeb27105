import Foundation
import PolyPEFT

/// `polyctl experiment recovery`: does the router recover the true task x skill allocation of the built-in data,
/// with PEFT's parameter mixing and with output mixing? Several seeds, one table.
enum ExperimentRecovery: Subcommand {
    static let name = "experiment recovery"
    static let overview = "Allocation recovery on the built-in data: parameter vs output mixing, over seeds."
    static let usage = "experiment recovery [--seeds <n>] [--steps <n>] [--method poly|mhr]"
    static let options: [OptionSpec] = [
        .int("seeds", "Number of seeds (data, initialisation and order), 0 ..< n.", range: 1...100, default: 3),
        .int("steps", "Training steps per run.", range: 1...1_000_000, default: TrainingConfiguration().steps),
        .choice("method", ["poly", "mhr"], "Poly (1 split) or MHR (4 splits).", default: "poly"),
    ]

    static func validate(_ args: ParsedArguments) throws {}

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let seeds = args.int("seeds")
        let method = args.choice("method")
        var training = TrainingConfiguration()
        training.steps = args.int("steps")
        training.warmupSteps = Swift.min(training.warmupSteps, training.steps / 10)
        var table = TableFormatter(headers: ["mixing", "seed", "cells recovered", "tasks exact", "test MSE"])
        var sums: [MixingMode: (Float, Float, Float)] = [:]
        for seed in 0..<seeds {
            var c = SyntheticTasks.Configuration()
            c.seed = UInt64(seed)
            let data = try SyntheticTasks(c)
            training.seed = UInt64(seed)
            for mixing in [MixingMode.parameters, .outputs] {
                let config = (PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: data.taskNames.count,
                                                           nSkills: c.nSkills, nSplits: method == "mhr" ? 4 : 1, mixing: mixing))
                let trained = try TrainedAdapter.train(config, data: data, training: training, seed: UInt64(seed))
                let r = try trained.recovery(truth: data.trueAllocation)
                table.addRow([mixing.rawValue, String(seed), pct(r.cells), pct(r.rows), formatFixed(Double(trained.testLoss), digits: 5)])
                let s = sums[mixing] ?? (0, 0, 0)
                sums[mixing] = (s.0 + r.cells, s.1 + r.rows, s.2 + trained.testLoss)
            }
        }
        for mixing in [MixingMode.parameters, .outputs] {
            let s = sums[mixing]!, n = Float(seeds)
            table.addRow([mixing.rawValue, "mean", pct(s.0 / n), pct(s.1 / n), formatFixed(Double(s.2 / n), digits: 5)])
        }
        console.print("Allocation recovery, \(method == "mhr" ? "MHR (4 splits)" : "Poly"), 6 skills, rank 2, \(training.steps) steps; per-layer recovery averaged over fc1 and fc2:")
        console.write(table.render())
    }

    static func pct(_ x: Float) -> String { formatFixed(Double(x) * 100, digits: 1) + "%" }
}
