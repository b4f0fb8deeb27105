import XCTest
@testable import PolyPEFT

final class T5TrainingTests: XCTestCase {
    /// A tiny T5 learns to reverse 4-token sequences: the loss falls clearly within a few dozen Adam steps.
    func testTinyT5LearnsToReverse() throws {
        let config = T5Config(vocabSize: 10, dModel: 32, dKV: 8, dFF: 64, numLayers: 2, numHeads: 4,
                              relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 16, dropoutRate: 0,
                              feedForward: .gated(.geluTanh), eosTokenID: 1)
        let model = try T5ForConditionalGeneration(config: config, seed: 1)
        var seen = Set<ObjectIdentifier>()         // tied embeddings appear under four names: optimise them once
        let params = model.trainableParameters().filter { seen.insert(ObjectIdentifier($0.parameter)).inserted }
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
