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
        .int("in", "Input features.", range: 1...65_536, default: 1024),
        .int("out", "Output features.", range: 1...65_536, default: 1024),
        .int("r", "LoRA rank of each skill.", range: 1...4096, default: 8),
        .int("skills", "Skills.", range: 1...4096, default: 8),
        .int("splits", "Splits (MHR heads).", range: 1...4096, default: 1),
        .int("tasks", "Tasks.", range: 1...1_000_000, default: 16),
        .int("batch", "Sequences per batch.", range: 1...1_000_000, default: 32),
        .int("tokens", "Tokens per sequence.", range: 1...1_000_000, default: 64),
        .mixing(default: .parameters),
        .flag("single-task", "Give every sequence task 0 instead of mixing tasks."),
        .strategy,
        .threads,
        .repeats("Timed rounds (each times every figure once) after one warm-up; the best is kept.", default: 5),
        .seed("Seed of weights and data."),
        .dump("Write weights, input, task ids and first outputs to a safetensors file."),
        .benchJSON,
    ]

    static func validate(_ args: ParsedArguments) throws {
        let inF = args.int("in"), outF = args.int("out"), splits = args.int("splits")
        guard inF % splits == 0, outF % splits == 0 else {
            throw CLIError.usage("--in \(inF) and --out \(outF) must both be divisible by --splits \(splits)", hint: args.hint)
        }
        let rows = args.int("batch") * args.int("tokens")
        try BenchSupport.checkSizes([("the input", rows * inF), ("the output", rows * outF),
                                     ("the adapter", args.int("skills") * args.int("r") * (inF + outF))], args)
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let inF = args.int("in"), outF = args.int("out"), r = args.int("r")
        let skills = args.int("skills"), splits = args.int("splits"), nTasks = args.int("tasks")
        let batch = args.int("batch"), tokens = args.int("tokens")
        let mixing = args.mixing, strategy = args.strategy
        let threads = args.threads
        let repeats = args.int("repeat")
        let seed = args.int("seed")
        let dumpPath = args.string("dump")
        let hint = args.hint

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
            try optimizer.trainingStep(taskIDs: taskIDs, rng: &trainRNG, seed: seedGrad) {
                try poly.forward(Variable(x, requiresGrad: inputGrad), $0)
            }
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
