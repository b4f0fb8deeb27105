import Foundation
import PolyPEFT

/// `polyctl bench bert`: a Poly/MHR adapter on a BERT of all-MiniLM-L6-v2's shape (or a real checkpoint), timed in
/// inference (tasks mixed in the batch, one task, the task merged into the base) and in a training step.
///
/// ```
/// model:  BertModel (no pooler), vocab 30522, hidden 384, 6 layers, 12 heads, intermediate 1536, gelu, dropout 0.1;
///         random weights from --seed, or --model DIR's checkpoint as published; base frozen
/// Poly:   on every query and value: r 8, 8 skills, --splits (1: Poly), 4 tasks, parameter mixing, random B
///         (init_weights false); task of sample b = b mod 4
/// data:   ids [batch, seq] uniform in 1000 ..< vocab, attention mask all ones, token types 0
/// mixed_infer   Context.inference, tasks b mod 4 -> last hidden state [B, T, H]
/// single_infer  the same, every sample task 0
/// train_step    Context(train) -> loss = mean(h^2) -> backward (adapter gradients) -> AdamW(1e-3, wd 0.01)
/// merged_infer  task 0 merged into the base weights (`PeftModel.merge`), then as single_infer
/// ```
/// Figures are timed interleaved (one warm-up each, then `--repeat` rounds; the best per figure is kept), merged
/// last; then the minor page faults of two more mixed inferences and training steps are counted (the page-fault
/// churn of fresh activations). `--dump` writes what `Benchmarks/compare_peft.py --case bert` loads into PyTorch +
/// PEFT: every base weight under its HF name, the adapter under PEFT's keys, `input_ids`, `task_ids`, and the
/// mixed-task output `mixed_out` of the first two samples [2, T, H].
enum BenchBert: Subcommand {
    static let name = "bench bert"
    static let overview = "Time Poly/MHR inference and a training step on a BERT of all-MiniLM-L6-v2's shape (or a real one)."
    static let usage = "bench bert [--model <dir>] [--batch <n>] [--seq <n>] [--splits <n>] [--threads <t>] [--repeat <r>] [--json] [--dump <file>]"
    static let options: [OptionSpec] = [
        .text("model", "<dir>", "A BERT folder to time instead of random weights of MiniLM-L6's shape."),
        .int("batch", "Sequences per step.", range: 1...65_536, default: 32),
        .int("seq", "Tokens per sequence (at most the model's positions).", range: 1...65_536, default: 128),
        .int("splits", "Routing blocks per skill (1: Poly, more: MHR).", range: 1...64, default: 1),
        .threads,
        .repeats("Timed rounds (each times every figure once) after one warm-up; the best is kept.", default: 3),
        .seed("Seed of weights, adapters and data."),
        .dump("Write weights, adapter, data and the first outputs to a safetensors file."),
        .benchJSON,
    ]

    static let r = 8, skills = 8, tasks = 4

    /// all-MiniLM-L6-v2's `config.json`, as far as the model uses it.
    static let miniLM: JSONValue = ["model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
                                    "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
                                    "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                                    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1]

    static func validate(_ args: ParsedArguments) throws {
        try BenchSupport.checkSizes([("the activations", args.int("batch") * args.int("seq") * 1536)], args)
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let batch = args.int("batch"), seq = args.int("seq"), splits = args.int("splits")
        let threads = args.threads, repeats = args.int("repeat"), seed = UInt64(args.int("seed"))
        let dumpPath = args.string("dump")
        let model: BertModel
        if let dir = args.string("model") {
            model = try BertModel.load(from: URL(fileURLWithPath: dir), addPoolingLayer: false)
        } else {
            model = try BertModel(config: try BertConfig(json: miniLM), addPoolingLayer: false, seed: seed)
        }
        let config = model.config
        guard seq <= config.maxPositionEmbeddings else {
            throw CLIError.runtime("--seq \(seq) is more than the model's \(config.maxPositionEmbeddings) positions")
        }
        guard config.hiddenSize % splits == 0 else {
            throw CLIError.runtime("--splits \(splits) does not divide the hidden size \(config.hiddenSize)")
        }
        let baseWeights = dumpPath == nil ? [] : model.uniqueNamedParameters().map { ($0.name, $0.parameter.value) }
        var rng = Xoshiro256(seed: seed &+ 1)
        let poly = PolyConfig(r: r, targetModules: .names(["query", "value"]), nTasks: tasks, nSkills: skills, nSplits: splits,
                              initWeights: false, mixing: .parameters)
        let peft = try PeftModel(wrapping: model, config: poly, using: &rng)
        var dataRNG = Xoshiro256(seed: seed &+ 2)
        let low = Swift.min(1000, config.vocabSize - 1)
        let ids = (0..<batch).map { _ in (0..<seq).map { _ in low + Int(dataRNG.next() % UInt64(config.vocabSize - low)) } }   // [B, T]
        let mask = [[Int]](repeating: [Int](repeating: 1, count: seq), count: batch)
        let mixed = (0..<batch).map { $0 % tasks }, single = [Int](repeating: 0, count: batch)
        let optimizer = Adam.adamW([ParameterGroup(name: "adapter", parameters: peft.adapterParameters().map { ($0.key, $0.parameter) },
                                                   learningRate: 1e-3, weightDecay: 0.01)])
        var trainRNG = Xoshiro256(seed: seed &+ 3)
        func infer(_ taskIDs: [Int]) throws -> Variable {
            try model.forward(inputIDs: ids, attentionMask: mask, Context.inference(taskIDs: taskIDs)).sequence   // [B, T, H]
        }

        var faults: [(String, Double)] = []
        func trainStep() throws {
            try optimizer.trainingStep(taskIDs: mixed, rng: &trainRNG) {
                try model.forward(inputIDs: ids, attentionMask: mask, $0).sequence.squared().mean()
            }
        }
        let figures: [(String, Double)] = try BenchSupport.withThreads(threads) {
            if let dumpPath {
                var t = try peft.adapterTensors()
                for (k, v) in baseWeights { t[k] = v }
                t["input_ids"] = Tensor(ids.flatMap { $0 }.map(Float.init), shape: [batch, seq])
                t["task_ids"] = BenchSupport.taskTensor(mixed)
                t["mixed_out"] = try infer(mixed).value.indexSelect(axis: 0, Array(0..<Swift.min(2, batch)))   // [2, T, H]
                try BenchSupport.dump(t, to: dumpPath)
            }
            var figures = try BenchSupport.interleavedBestMilliseconds(rounds: repeats, [
                ("mixed_infer", { _ = try infer(mixed) }),
                ("single_infer", { _ = try infer(single) }),
                ("train_step", trainStep),
            ])
            faults = [("mixed_infer", try BenchSupport.minorFaultsPerCall(calls: 2) { _ = try infer(mixed) }),
                      ("train_step", try BenchSupport.minorFaultsPerCall(calls: 2, trainStep))]
            try peft.merge(task: 0)
            figures.append(("merged_infer", try BenchSupport.bestMilliseconds(rounds: repeats) { _ = try infer(single) }))
            return figures
        }
        let load = BenchSupport.loadAverage()
        if args.flag("json") {
            var pairs: [(String, JSONField)] = [("batch", .int(batch)), ("seq", .int(seq)), ("vocab", .int(config.vocabSize)),
                ("hidden", .int(config.hiddenSize)), ("layers", .int(config.numHiddenLayers)), ("heads", .int(config.numAttentionHeads)),
                ("intermediate", .int(config.intermediateSize)), ("max_positions", .int(config.maxPositionEmbeddings)),
                ("type_vocab", .int(config.typeVocabSize)), ("layer_norm_eps", .shortest(Double(config.layerNormEps))),
                ("r", .int(r)), ("skills", .int(skills)), ("splits", .int(splits)), ("tasks", .int(tasks)),
                ("threads", .int(threads)), ("repeat", .int(repeats))]
            pairs += figures.map { ("\($0.0)_ms", .fixed($0.1, digits: 3)) }
            pairs += faults.map { ("\($0.0)_minor_faults", .fixed($0.1, digits: 0)) }
            pairs.append(("load", BenchSupport.loadField(load)))
            console.print(JSONField.line(pairs))
        } else {
            console.print("model:   BERT \(config.numHiddenLayers) layers, hidden \(config.hiddenSize), \(config.numAttentionHeads) heads, intermediate \(config.intermediateSize), vocab \(config.vocabSize)\(args.isGiven("model") ? " (\(args.string("model")!))" : " (random, MiniLM-L6's shape)"); \(splits == 1 ? "Poly" : "MHR") on query and value (r \(r), \(skills) skills, \(splits) split\(splits == 1 ? "" : "s"), \(tasks) tasks)")
            console.print("input:   \(batch) x \(seq) tokens, \(threads) thread\(threads == 1 ? "" : "s"), best of \(repeats) rounds\(load.map { ", load average \(BenchSupport.fmt($0, 2))" } ?? "")")
            for line in BenchSupport.figureLines(figures) { console.print(line) }
            console.print("minor page faults per call: " + faults.map { "\($0.0) \(BenchSupport.fmt($0.1, 0))" }.joined(separator: ", "))
        }
    }
}
