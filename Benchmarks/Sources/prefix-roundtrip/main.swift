import Foundation
import PolyPEFT

// prefix-roundtrip --model DIR --inputs FILE --adapter DIR --outputs FILE --virtual-tokens P [--projection E]
//                  [--steps N] [--lr LR] [--seed S]
//
// The PolyPEFT side of Benchmarks/prefix_roundtrip.py. Loads a Hugging Face model folder (BertModel,
// BertForSequenceClassification or T5ForConditionalGeneration; PEFT's task type follows from the model, see
// RoundTripSubject), attaches prefix tuning with P virtual tokens (with `--projection E`: prefix_projection with
// encoder_hidden_size E), trains it N Adam steps (learning rate LR) on a seeded toy objective, saves the PEFT folder
// to --adapter, reloads that folder into a fresh copy of the model, and writes to --outputs (float32 safetensors),
// for every named output of the model on the inputs of --inputs:
//
//   base.<name>       the model before prefix tuning is attached
//   peft.<name>       the trained model (eval mode)
//   reloaded.<name>   a fresh model with the saved folder loaded (PeftModel.load)
//
// Prints the task type, what trains, the loss before and after training and how far the saved table moved from its
// initial value (the projected table, with a projection).
struct Options {
    var model: URL?, inputs: URL?, adapter: URL?, outputs: URL?
    var virtualTokens: Int?, projection: Int?
    var steps = 40, learningRate: Float = 0.05, seed: UInt64 = 0

    static let usage = "usage: prefix-roundtrip --model DIR --inputs FILE --adapter DIR --outputs FILE --virtual-tokens P "
        + "[--projection E] [--steps N] [--lr LR] [--seed S]"

    /// Parses `--key value` pairs; anything unknown, missing or malformed is a usage error naming it.
    init(_ arguments: [String]) throws {
        var i = 0
        func value(_ key: String) throws -> String {
            guard i + 1 < arguments.count else { throw UsageError("\(key) needs a value") }
            i += 1
            return arguments[i]
        }
        func positive(_ key: String) throws -> Int {
            let v = try value(key)
            guard let n = Int(v), n > 0 else { throw UsageError("\(key) must be a positive integer, got '\(v)'") }
            return n
        }
        while i < arguments.count {
            let key = arguments[i]
            switch key {
            case "--model": model = URL(fileURLWithPath: try value(key))
            case "--inputs": inputs = URL(fileURLWithPath: try value(key))
            case "--adapter": adapter = URL(fileURLWithPath: try value(key))
            case "--outputs": outputs = URL(fileURLWithPath: try value(key))
            case "--virtual-tokens": virtualTokens = try positive(key)
            case "--projection": projection = try positive(key)
            case "--steps": steps = try positive(key)
            case "--lr":
                let v = try value(key)
                guard let lr = Float(v), lr > 0, lr.isFinite else {
                    throw UsageError("--lr must be a positive number, got '\(v)'")
                }
                learningRate = lr
            case "--seed":
                let v = try value(key)
                guard let s = UInt64(v) else { throw UsageError("--seed must be a non-negative integer, got '\(v)'") }
                seed = s
            default: throw UsageError("unknown argument '\(key)'")
            }
            i += 1
        }
        for (name, given) in [("--model", model != nil), ("--inputs", inputs != nil), ("--adapter", adapter != nil),
                              ("--outputs", outputs != nil), ("--virtual-tokens", virtualTokens != nil)] where !given {
            throw UsageError("\(name) is required")
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The subject's outputs as tensors, each under `prefix.<name>`.
func outputs(of subject: RoundTripSubject, _ ctx: Context, as prefix: String) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (name, v) in try subject.outputs(ctx) { out[prefix + "." + name] = v.value }
    return out
}

func run(_ o: Options) throws {
    let inputs = try SafetensorsFile(contentsOf: o.inputs!)
    var rng = Xoshiro256(seed: o.seed)
    let subject = try RoundTripSubject.load(folder: o.model!, inputs: inputs, using: &rng)
    var written = try outputs(of: subject, .inference(), as: "base")

    let config = PrefixTuningConfig(numVirtualTokens: o.virtualTokens!, taskType: subject.taskType,
                                    prefixProjection: o.projection != nil, encoderHiddenSize: o.projection)
    let peft = try PeftModel(wrapping: subject.model, config: config, using: &rng)
    let initial = try savedTable(peft)

    let parameters = peft.trainableAdapterParameters()
    let adam = Adam([ParameterGroup(parameters: parameters.map { ($0.key, $0.parameter) }, learningRate: o.learningRate)])
    let start = try subject.loss(.inference()).value.scalars[0]
    for _ in 0..<o.steps {
        adam.zeroGrad()
        try subject.loss(Context(mode: .train, rng: rng)).backward()
        adam.step()
    }
    let final = try subject.loss(.inference()).value.scalars[0]
    written.merge(try outputs(of: subject, .inference(), as: "peft")) { $1 }
    try peft.save(to: o.adapter!)

    let fresh = try RoundTripSubject.load(folder: o.model!, inputs: inputs, using: &rng)
    let loaded = try PeftModel.load(from: o.adapter!, into: fresh.model)
    written.merge(try outputs(of: fresh, .inference(), as: "reloaded")) { $1 }
    try Safetensors.write(written, to: o.outputs!)

    let table = try savedTable(loaded)
    let moved = try (table - initial).abs().max().scalars[0], scale = try initial.abs().max().scalars[0]
    print("task_type=\(subject.taskType) virtual_tokens=\(o.virtualTokens!) "
        + "projection=\(o.projection.map(String.init) ?? "none")")
    print("trained: \(parameters.map { "\($0.key) \($0.parameter.value.shape)" }.joined(separator: ", "))")
    print(String(format: "loss: %.5f -> %.5f after %d Adam steps (lr %g)", start, final, o.steps, o.learningRate))
    print(String(format: "prompt_embeddings moved by %.3f at most (initial values up to %.3f)", moved, scale))
}

/// The saved `prompt_embeddings` of a prefix-tuned model.
func savedTable(_ peft: PeftModel) throws -> Tensor {
    guard let table = try peft.adapterTensors()["prompt_embeddings"] else {
        throw ConfigError("the adapter has no prompt_embeddings (not prefix tuning?)")
    }
    return table
}

do {
    try run(try Options(Array(CommandLine.arguments.dropFirst())))
} catch let e as UsageError {
    FileHandle.standardError.write(Data("prefix-roundtrip: \(e)\n\(Options.usage)\n".utf8))
    exit(64)
} catch {
    FileHandle.standardError.write(Data("prefix-roundtrip: \(error)\n".utf8))
    exit(1)
}
