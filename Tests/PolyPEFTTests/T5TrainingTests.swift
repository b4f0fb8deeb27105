import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class T5TrainingTests: XCTestCase {
    /// A tiny T5 learns to reverse 4-token sequences: the loss falls clearly within a few dozen Adam steps.
    func testTinyT5LearnsToReverse() throws {
        let config = T5Config(vocabSize: 10, dModel: 32, dKV: 8, dFF: 64, numLayers: 2, numHeads: 4,
                              relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 16, dropoutRate: 0,
                              feedForward: .gated(.geluTanh), eosTokenID: 1)
        let model = try T5ForConditionalGeneration(config: config, seed: 1)
        // Tied embeddings appear under four names: optimise them once.
        let params = model.uniqueNamedParameters().filter { $0.parameter.requiresGrad }
        let opt = Adam([ParameterGroup(parameters: params, learningRate: 3e-3)])
        var g = Xoshiro256(seed: 2)
        func batch() -> ([[Int]], [[Int]]) {
            let x = (0..<16).map { _ in (0..<4).map { _ in 2 + Int(g.next() % 8) } }
            return (x, x.map { Array($0.reversed()) + [1] })
        }
        var losses: [Float] = []
        for _ in 0..<60 {
            let (x, y) = batch()
            model.zeroGrad()
            let loss = try model.loss(inputIDs: x, attentionMask: nil, labels: y, Context(mode: .train))
            try loss.backward()
            opt.step()
            losses.append(loss.value.scalarValue)
        }
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(last, first * 0.5, "loss \(first) -> \(last)")

        // The trained model ends its outputs with EOS: beam search finishes hypotheses before maxLength, and agrees
        // with and without the cache.
        let (x, _) = batch()
        let src = Array(x.prefix(4))
        let gen = GenerationConfig(maxLength: 12, numBeams: 3)
        let beams = try model.generate(inputIDs: src, config: gen, .inference())
        var nocache = gen
        nocache.useCache = false
        XCTAssertEqual(beams, try model.generate(inputIDs: src, config: nocache, .inference()))
        XCTAssertTrue(beams.allSatisfy { $0.last == 1 && $0.count < 12 }, "\(beams)")
    }
}

final class T5PolyTrainingTests: XCTestCase {
    /// MHR adapters on q and v (PEFT's default T5 targets) of a pretrained-then-frozen T5 learn two tasks at once —
    /// copy and reverse, chosen per sample by its task id — while the base stays frozen.
    func testMHRInsideFrozenT5LearnsTwoTasks() throws {
        let config = T5Config(vocabSize: 10, dModel: 32, dKV: 8, dFF: 64, numLayers: 2, numHeads: 4,
                              relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 16, dropoutRate: 0,
                              feedForward: .dense(.relu), eosTokenID: 1)
        let model = try T5ForConditionalGeneration(config: config, seed: 3)
        var g = Xoshiro256(seed: 4)
        let before = model.stateDict()
        let peft = try PeftModel(wrapping: model, config: PolyConfig(r: 4, nTasks: 2, nSkills: 4, nSplits: 2, mixing: .outputs),
                                 using: &g)
        XCTAssertEqual(peft.adapters.count, 12)     // q and v: 2 encoder blocks x 1 attention + 2 decoder blocks x 2
        let trainable = peft.trainableParameters()
        let opt = Adam([ParameterGroup(name: "skills", parameters: trainable[.adapter], learningRate: 1e-2),
                        ParameterGroup(name: "router", parameters: trainable[.router], learningRate: 1e-1)])
        func batch() -> ([[Int]], [[Int]], [Int]) {
            let tasks = (0..<16).map { $0 % 2 }
            let x = (0..<16).map { _ in (0..<4).map { _ in 2 + Int(g.next() % 8) } }
            return (x, zip(x, tasks).map { ($1 == 0 ? $0 : Array($0.reversed())) + [1] }, tasks)
        }
        var losses: [Float] = []
        for _ in 0..<80 {
            let (x, y, tasks) = batch()
            opt.zeroGrad()
            let loss = try model.loss(inputIDs: x, attentionMask: nil, labels: y, Context(mode: .train, taskIDs: tasks, rng: g))
            try loss.backward()
            opt.step()
            losses.append(loss.value.scalarValue)
        }
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(last, first * 0.6, "loss \(first) -> \(last)")
        // The base is untouched: every base weight (now under base_layer where adapted) is what it was.
        for (name, value) in model.stateDict() where !name.contains("poly_") {
            XCTAssertEqual(value, before[name.replacingOccurrences(of: ".base_layer.", with: ".")], name)
        }
    }
}
