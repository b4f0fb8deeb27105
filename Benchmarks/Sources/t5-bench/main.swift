import Dispatch
import Foundation
import PolyPEFT

// t5-bench [batch seq [runs [frozen]]]: times one training step (forward, loss, backward) of a randomly initialised
// T5-small-sized model (d_model 512, 6+6 layers, 8 heads of 64, d_ff 2048, relu, vocab 32128), source and target
// both `seq` tokens long. `frozen` (0/1) freezes every base weight and injects MHR adapters (Poly layers, r 8,
// 8 skills, 8 splits, 4 tasks) in place of every `q` and `v`, as in adapter training: backward runs through all
// activations but forms weight gradients only for the adapters. Prints the best of `runs` after one warm-up,
// `seconds=` last.
let args = CommandLine.arguments.dropFirst().map { Int($0) }
guard args.allSatisfy({ $0 != nil && $0! >= 0 }) else {
    FileHandle.standardError.write(Data("usage: t5-bench [batch seq [runs [frozen]]]  (non-negative integers)\n".utf8))
    exit(64)
}
let batch = args.count >= 2 ? args[0]! : 8, seq = args.count >= 2 ? args[1]! : 128
let runs = args.count >= 3 ? max(args[2]!, 1) : 2
let frozen = args.count >= 4 && args[3]! != 0

let config = T5Config(vocabSize: 32128, dModel: 512, dKV: 64, dFF: 2048, numLayers: 6, numHeads: 8, dropoutRate: 0.1)
let model = try T5ForConditionalGeneration(config: config, seed: 1)
var rng = Xoshiro256(seed: 2)
if frozen {
    model.freeze()
    for path in model.namedModules().map(\.path) where path.hasSuffix(".q") || path.hasSuffix(".v") {
        guard let base = model.module(at: path) as? Linear else { continue }
        let poly = try PolyLinear(wrapping: base, path: path, r: 8, nTasks: 4, nSkills: 8, nSplits: 8,
                                  initWeights: false, using: &rng)
        try model.replace(path: path, with: poly)
    }
}
let taskIDs = (0..<batch).map { $0 % 4 }
let source = (0..<batch).map { _ in (0..<seq).map { _ in 2 + Int(rng.next() % 32000) } }
let labels = (0..<batch).map { _ in (0..<seq).map { _ in 2 + Int(rng.next() % 32000) } }

@MainActor func step() throws -> (forward: Double, total: Double) {
    model.zeroGrad()
    let t0 = DispatchTime.now().uptimeNanoseconds
    let ctx = Context(mode: .train, taskIDs: frozen ? taskIDs : nil, rng: Xoshiro256(seed: 3))
    let loss = try model.loss(inputIDs: source, attentionMask: nil, labels: labels, ctx)
    let t1 = DispatchTime.now().uptimeNanoseconds
    if loss.requiresGrad { try loss.backward() }
    let t2 = DispatchTime.now().uptimeNanoseconds
    return (Double(t1 - t0) / 1e9, Double(t2 - t0) / 1e9)
}

_ = try step()
var best = (forward: Double.infinity, total: Double.infinity)
for _ in 0..<runs {
    let s = try step()
    if s.total < best.total { best = s }
}
print("T5-small-sized train step, batch \(batch) x seq \(seq) (source and target), threads \(Parallel.defaultThreads)"
      + (frozen ? ", base frozen, MHR on q/v" : "") + ": forward+loss \(String(format: "%.2f", best.forward)) s, "
      + "forward+backward \(String(format: "%.2f", best.total)) s")
print("seconds=\(String(format: "%.3f", best.total))")
