import Foundation
import PolyPEFT

/// `polyctl bench layer`: one Poly linear layer against its frozen base, in inference and in a training step.
///
/// ```
/// x: [batch, tokens, in], task of sample b = b mod tasks (mixed) or 0 (--single-task), G: [batch, tokens, out] seed
/// base_forward      y = x W^T + b
/// poly_infer        y = base(x) + x A_t B_t / r                      (evaluation mode, no graph)
/// train_step        forward (train mode) + backward(G) + AdamW step  (no input gradient)
/// train_step_dx     the same with dL/dx as well
/// base_forward_dx   base forward + dL/dx = G W (what any frozen layer in a network costs in training)
/// overhead_infer = poly_infer / base_forward - 1;   overhead_train = train_step_dx / base_forward_dx - 1
/// ```
/// The figures are timed interleaved (round after round of all five), so each pair compared sees the same load.
enum BenchLayer: Subcommand {
    static let name = "bench layer"
    static let overview = "Time one Poly linear layer against its frozen base (inference and training step)."
    static let usage = "bench layer [--in <n>] [--out <n>] [--r <n>] [--skills <n>] [--splits <n>] [--tasks <n>] [--batch <n>] [--tokens <n>] [options]"
    static let options: [OptionSpec] = [
        OptionSpec("in", "<n>", "Input features.", default: "1024"),
        OptionSpec("out", "<n>", "Output features.", default: "1024"),
        OptionSpec("r", "<n>", "LoRA rank of each skill.", default: "8"),
        OptionSpec("skills", "<n>", "Skills.", default: "8"),
        OptionSpec("splits", "<n>", "Splits (MHR heads).", default: "1"),
        OptionSpec("tasks", "<n>", "Tasks.", default: "16"),
        OptionSpec("batch", "<n>", "Sequences per batch.", default: "32"),
        OptionSpec("tokens", "<n>", "Tokens per sequence.", default: "64"),
        OptionSpec("mixing", "<parameters|outputs>", "Mix skill parameters (PEFT) or skill outputs.", default: "parameters"),
        OptionSpec("single-task", nil, "Give every sequence task 0 instead of mixing tasks."),
        OptionSpec("strategy", "<automatic|perGroup|perRow>", "Routing kernel.", default: "automatic"),
        OptionSpec("threads", "<t>", "Threads to use.", default: "all processors or POLYPEFT_THREADS"),
        OptionSpec("repeat", "<r>", "Timed rounds (each times every figure once) after one warm-up; the best is kept.", default: "5"),
        OptionSpec("seed", "<n>", "Seed of weights and data.", default: "0"),
        OptionSpec("dump", "<file>", "Write weights, input, task ids and first outputs to a safetensors file."),
        OptionSpec("json", nil, "Print the figures as one JSON object."),
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let inF = try args.int("in", default: 1024, range: 1...65_536)
        let outF = try args.int("out", default: 1024, range: 1...65_536)
        let r = try args.int("r", default: 8, range: 1...4096)
        let skills = try args.int("skills", default: 8, range: 1...4096)
        let splits = try args.int("splits", default: 1, range: 1...4096)
        let nTasks = try args.int("tasks", default: 16, range: 1...1_000_000)
        let batch = try args.int("batch", default: 32, range: 1...1_000_000)
        let tokens = try args.int("tokens", default: 64, range: 1...1_000_000)
        let mixing = MixingMode(rawValue: try args.choice("mixing", MixingMode.allCases.map(\.rawValue), default: "parameters"))!
        let strategy = RoutingStrategy(rawValue: try args.choice("strategy", RoutingStrategy.allCases.map(\.rawValue), default: "automatic"))!
        let threads = try args.int("threads", default: Parallel.defaultThreads, range: 1...1024)
        let repeats = try args.int("repeat", default: 5, range: 1...10_000)
        let seed = try args.int("seed", default: 0, range: 0...Int.max)
        let dumpPath = try BenchSupport.dumpPath(args, name)
        let hint = "see 'polyctl \(name) --help'"
        guard inF % splits == 0, outF % splits == 0 else {
            throw CLIError.usage("--in \(inF) and --out \(outF) must both be divisible by --splits \(splits)", hint: hint)
        }
        for (what, count) in [("the input", batch * tokens * inF), ("the output", batch * tokens * outF),
                              ("the adapter", skills * r * (inF + outF))] where count > 1 << 28 {
            throw CLIError.usage("\(what) would have \(count) elements; the limit is \(1 << 28)", hint: hint)
        }

        var rng = Xoshiro256(seed: UInt64(seed))
        let base = Linear(inF, outF, bias: true, using: &rng)
        base.freeze()
        let poly: PolyLinear
        do {
            poly = try PolyLinear(wrapping: base, path: "layer", r: r, nTasks: nTasks, nSkills: skills, nSplits: splits,
                                  initWeights: false, mixing: mixing, using: &rng)
        } catch { throw CLIError.usage("\(error)", hint: hint) }
        poly.strategy = strategy
        let x = Tensor.normal([batch, tokens, inF], using: &rng)                 // x: [B, T, in]
        let seedGrad = Tensor.normal([batch, tokens, outF], using: &rng)         // G: [B, T, out]
        let taskIDs = (0..<batch).map { args.flag("single-task") ? 0 : $0 % nTasks }
        let params = poly.adapterParameters()
        let optimizer = Adam.adamW([ParameterGroup(name: "adapter", parameters: params, learningRate: 1e-3, weightDecay: 0.01)])
        var trainRNG = Xoshiro256(seed: UInt64(seed) &+ 1)

        func trainStep(inputGrad: Bool) throws {
            let ctx = Context(mode: .train, taskIDs: taskIDs, rng: trainRNG)
            let y = try poly.forward(Variable(x, requiresGrad: inputGrad), ctx)
            try y.backward(seed: seedGrad)
            optimizer.step(lrScale: 1)
            optimizer.zeroGrad()
            trainRNG = ctx.rng
        }

        let figures: [(String, Double)] = try BenchSupport.withThreads(threads) {
            if let dumpPath {
                let yBase = try base.forward(Variable(x), Context.inference()).value
                let yPoly = try poly.forward(Variable(x), Context.inference(taskIDs: taskIDs)).value
                var t = ["base.weight": base.weight.value, "base.bias": base.bias!.value, "x": x, "grad_seed": seedGrad,
                         "task_ids": BenchSupport.taskTensor(taskIDs), "y_base": yBase, "y_poly": yPoly]
                for (n, p) in params { t[n] = p.value }
                try BenchSupport.dump(t, to: dumpPath)
            }
            let inferCtx = Context.inference(taskIDs: taskIDs)
            return try BenchSupport.interleavedBestMilliseconds(rounds: repeats, [
                ("base_forward", { _ = try base.forward(Variable(x), inferCtx) }),
                ("poly_infer", { _ = try poly.forward(Variable(x), inferCtx) }),
                ("train_step", { try trainStep(inputGrad: false) }),
                ("train_step_dx", { try trainStep(inputGrad: true) }),
                ("base_forward_dx", {
                    let y = try base.forward(Variable(x, requiresGrad: true), Context(mode: .train))
                    try y.backward(seed: seedGrad)
                }),
            ])
        }
        let ms = Dictionary(uniqueKeysWithValues: figures)
        let overheadInfer = ms["poly_infer"]! / ms["base_forward"]! - 1
        let overheadTrain = ms["train_step_dx"]! / ms["base_forward_dx"]! - 1
        let load = BenchSupport.loadAverage()
        if args.flag("json") {
            var pairs: [(String, JSONField)] = [("in", .int(inF)), ("out", .int(outF)), ("r", .int(r)), ("skills", .int(skills)),
                ("splits", .int(splits)), ("tasks", .int(nTasks)), ("batch", .int(batch)), ("tokens", .int(tokens)),
                ("mixing", .string(mixing.rawValue)), ("threads", .int(threads)), ("repeat", .int(repeats))]
            pairs += figures.map { ("\($0.0)_ms", .fixed($0.1, digits: 3)) }
            pairs += [("overhead_infer", .fixed(overheadInfer, digits: 4)), ("overhead_train", .fixed(overheadTrain, digits: 4)),
                      ("load", BenchSupport.loadField(load))]
            console.print(JSONField.line(pairs))
        } else {
            console.print("layer:   \(inF) -> \(outF), r \(r), \(skills) skills, \(splits) split\(splits == 1 ? "" : "s"), \(nTasks) tasks, \(mixing.rawValue) mixing")
            console.print("input:   \(batch) x \(tokens) tokens, \(args.flag("single-task") ? "one task" : "mixed tasks"), \(threads) thread\(threads == 1 ? "" : "s")")
            console.print("best of \(repeats) runs\(load.map { ", load average \(BenchSupport.fmt($0, 2))" } ?? ""):")
            for line in BenchSupport.figureLines(figures) { console.print(line) }
        }
        console.print("overhead_infer=\(BenchSupport.fmt(overheadInfer, 4))")
        console.print("overhead_train=\(BenchSupport.fmt(overheadTrain, 4))")
    }
}
