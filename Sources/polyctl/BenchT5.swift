import Foundation
import PolyPEFT

/// `polyctl bench t5`: one Poly/MHR adapter training step on a T5-small-sized model, and its evaluation forward.
///
/// ```
/// model:  T5ForConditionalGeneration, vocab 32128, d_model 512, d_kv 64, d_ff 2048, 6+6 layers, 8 heads, relu,
///         dropout 0.1, tied head; random weights from --seed; base frozen
/// Poly:   on every attention q and v (self and cross): r 8, 8 skills, 8 splits, 4 tasks, parameter mixing,
///         random B (init_weights false); task of sample b = b mod 4
/// data:   source ids, labels: [batch, seq], uniform in 2 ..< vocab; decoder input = labels shifted right
/// train_step    Context(train) -> loss (mean CE) -> backward (adapter gradients) -> AdamW(1e-3, wd 0.01) on adapters
/// eval_forward  Context.inference -> loss (dropout off, routers sigmoid(logits), no graph)
/// ```
/// The two figures are timed interleaved (one warm-up each, then `--repeat` rounds); the best per figure is kept.
/// `--dump` writes what `Benchmarks/compare_peft.py` loads into PyTorch + PEFT: every base weight once under its HF
/// name (the tied embedding as `shared.weight`), the adapter under PEFT's keys, `input_ids`, `labels`, `task_ids`,
/// and the evaluation-mode `eval_loss` [1] and `logits_slice` [batch, P, vocab] at `logits_positions` [P].
enum BenchT5: Subcommand {
    static let name = "bench t5"
    static let overview = "Time a Poly/MHR training step of a T5-small-sized model with q and v adapters."
    static let usage = "bench t5 [--batch <n>] [--seq <n>] [--layers <n>] [--threads <t>] [--repeat <r>] [--json] [--dump <file>]"
    static let options: [OptionSpec] = [
        .int("batch", "Sequences per step.", range: 1...65_536, default: 8),
        .int("seq", "Tokens per source and per target sequence.", range: 1...65_536, default: 128),
        .int("layers", "Encoder layers and decoder layers.", range: 1...256, default: 6),
        .int("d-model", "Model width (a multiple of 8 and of --heads).", range: 8...65_536, default: 512),
        .int("d-ff", "Feed-forward width.", range: 1...1_048_576, default: 2048),
        .int("heads", "Attention heads (d_kv = d_model / heads).", range: 1...4096, default: 8),
        .int("vocab", "Vocabulary size.", range: 3...1_048_576, default: 32128),
        .threads,
        .repeats("Timed rounds (each times every figure once) after one warm-up; the best is kept.", default: 2),
        .seed("Seed of weights, adapters and data."),
        .dump("Write weights, adapter, data and evaluation outputs to a safetensors file."),
        .benchJSON,
    ]

    static let r = 8, skills = 8, splits = 8, tasks = 4

    static func validate(_ args: ParsedArguments) throws {
        let dModel = args.int("d-model"), heads = args.int("heads")
        guard dModel % heads == 0, dModel % splits == 0 else {
            throw CLIError.usage("--d-model \(dModel) must be divisible by --heads \(heads) and by the \(splits) splits", hint: args.hint)
        }
        let tokens = args.int("batch") * args.int("seq"), vocab = args.int("vocab")
        try BenchSupport.checkSizes([("the embedding", vocab * dModel), ("the logits", tokens * vocab),
                                     ("the feed-forward activations", tokens * args.int("d-ff"))], args)
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let batch = args.int("batch"), seq = args.int("seq"), layers = args.int("layers")
        let dModel = args.int("d-model"), dFF = args.int("d-ff"), heads = args.int("heads"), vocab = args.int("vocab")
        let threads = args.threads
        let repeats = args.int("repeat")
        let seed = UInt64(args.int("seed"))
        let dumpPath = args.string("dump")

        let config = T5Config(vocabSize: vocab, dModel: dModel, dKV: dModel / heads, dFF: dFF, numLayers: layers,
                              numHeads: heads, dropoutRate: 0.1)
        let model = try T5ForConditionalGeneration(config: config, seed: seed)
        let baseWeights = dumpPath == nil ? [] : model.uniqueNamedParameters().map { ($0.name, $0.parameter.value) }
        var rng = Xoshiro256(seed: seed &+ 1)
        let polyConfig = PolyConfig(r: r, targetModules: .names(["q", "v"]), nTasks: tasks, nSkills: skills, nSplits: splits,
                                    initWeights: false, mixing: .parameters)
        let peft = try PeftModel(wrapping: model, config: polyConfig, using: &rng)
        var dataRNG = Xoshiro256(seed: seed &+ 2)
        func tokens() -> [[Int]] { (0..<batch).map { _ in (0..<seq).map { _ in 2 + Int(dataRNG.next() % UInt64(vocab - 2)) } } }
        let source = tokens(), labels = tokens()                                  // [B, T] each
        let taskIDs = (0..<batch).map { $0 % tasks }
        let targets = labels.flatMap { $0 }
        let optimizer = Adam.adamW([ParameterGroup(name: "adapter", parameters: peft.adapterParameters().map { ($0.key, $0.parameter) },
                                                   learningRate: 1e-3, weightDecay: 0.01)])
        var trainRNG = Xoshiro256(seed: seed &+ 3)

        func trainStep() throws {
            try optimizer.trainingStep(taskIDs: taskIDs, rng: &trainRNG) {
                try model.loss(inputIDs: source, attentionMask: nil, labels: labels, $0)
            }
        }

        var evalLoss: Float = 0
        let figures: [(String, Double)] = try BenchSupport.withThreads(threads) {
            let logits = try model.forward(inputIDs: source, attentionMask: nil, decoderInputIDs: try model.shiftRight(labels),
                                           Context.inference(taskIDs: taskIDs))                // logits: [B, T, V]
            evalLoss = try Loss.crossEntropy(logits, targets: targets).value.scalars[0]
            if let dumpPath {
                let positions = Array(Set([0, 1, seq / 2, seq - 1].filter { $0 < seq })).sorted()
                var t = try peft.adapterTensors()
                for (k, v) in baseWeights { t[k] = v }
                t["input_ids"] = Tensor(source.flatMap { $0 }.map(Float.init), shape: [batch, seq])
                t["labels"] = Tensor(targets.map(Float.init), shape: [batch, seq])
                t["task_ids"] = BenchSupport.taskTensor(taskIDs)
                t["eval_loss"] = Tensor([evalLoss], shape: [1])
                t["logits_positions"] = Tensor(positions.map(Float.init), shape: [positions.count])
                t["logits_slice"] = try logits.value.indexSelect(axis: 1, positions)          // [B, P, V]
                try BenchSupport.dump(t, to: dumpPath)
            }
            return try BenchSupport.interleavedBestMilliseconds(rounds: repeats, [
                ("train_step", trainStep),
                ("eval_forward", {
                    _ = try model.loss(inputIDs: source, attentionMask: nil, labels: labels, Context.inference(taskIDs: taskIDs))
                }),
            ])
        }
        let load = BenchSupport.loadAverage()
        if args.flag("json") {
            var pairs: [(String, JSONField)] = [("batch", .int(batch)), ("seq", .int(seq)), ("layers", .int(layers)),
                ("d_model", .int(dModel)), ("d_ff", .int(dFF)), ("heads", .int(heads)), ("vocab", .int(vocab)),
                ("r", .int(r)), ("skills", .int(skills)), ("splits", .int(splits)), ("tasks", .int(tasks)),
                ("threads", .int(threads)), ("repeat", .int(repeats))]
            pairs += figures.map { ("\($0.0)_ms", .fixed($0.1, digits: 3)) }
            pairs += [("eval_loss", .fixed(Double(evalLoss), digits: 6)), ("load", BenchSupport.loadField(load))]
            console.print(JSONField.line(pairs))
        } else {
            console.print("model:   T5 \(layers)+\(layers) layers, d_model \(dModel), d_ff \(dFF), \(heads) heads, vocab \(vocab); MHR on q and v (r \(r), \(skills) skills, \(splits) splits, \(tasks) tasks)")
            console.print("input:   \(batch) x \(seq) tokens (source and target), \(threads) thread\(threads == 1 ? "" : "s"), best of \(repeats) rounds\(load.map { ", load average \(BenchSupport.fmt($0, 2))" } ?? "")")
            for line in BenchSupport.figureLines(figures) { console.print(line) }
        }
        console.print("eval_loss=\(BenchSupport.fmt(Double(evalLoss), 6))")
        console.print("train_step_ms=\(BenchSupport.fmt(figures[0].1))")
    }
}
