import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class T5GenerationTests: XCTestCase {
    let inputs = [[3, 4, 5, 6, 2], [7, 8, 9, 1, 0], [10, 3, 3, 12, 5]]
    let mask = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]

    func testCachedAndUncachedGreedyAgree() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(gated: true), seed: 11)
        let cached = try model.generate(inputIDs: inputs, attentionMask: mask, config: GenerationConfig(maxLength: 9, eosTokenID: 4), .inference())
        let uncached = try model.generate(inputIDs: inputs, attentionMask: mask,
                                          config: GenerationConfig(maxLength: 9, eosTokenID: 4, useCache: false), .inference())
        XCTAssertEqual(cached, uncached)
        XCTAssertTrue(cached.allSatisfy { $0.first == 0 && $0.count <= 9 })
        // Greedy picks the argmax of the full forward at each step.
        let s = cached[0]
        let logits = try model.forward(inputIDs: [inputs[0]], attentionMask: [mask[0]], decoderInputIDs: [Array(s.dropLast())], .inference())
        let (am, _) = try logits.value.argmax(axis: -1)
        XCTAssertEqual(am, Array(s.dropFirst()))
    }

    func testBeamSearchCachedUncachedAndOneBeamIsGreedy() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 12)
        let gen = GenerationConfig(maxLength: 8, numBeams: 3)
        let a = try model.generate(inputIDs: inputs, attentionMask: mask, config: gen, .inference())
        var g2 = gen
        g2.useCache = false
        XCTAssertEqual(a, try model.generate(inputIDs: inputs, attentionMask: mask, config: g2, .inference()))
        let one = try model.generate(inputIDs: inputs, attentionMask: mask, config: GenerationConfig(maxLength: 8, numBeams: 1), .inference())
        var g1 = gen
        g1.numBeams = 1
        XCTAssertEqual(one, try model.generate(inputIDs: inputs, attentionMask: mask, config: g1, .inference()))
        // The beam result scores at least as well as greedy under the same (length-normalised) objective.
        for i in 0..<inputs.count {
            XCTAssertGreaterThanOrEqual(try score(model, i, a[i]), try score(model, i, one[i]) - 1e-4)
        }
    }

    /// sum(log p) / generated length of `seq` for sample `i`.
    func score(_ model: T5ForConditionalGeneration, _ i: Int, _ seq: [Int]) throws -> Float {
        let logits = try model.forward(inputIDs: [inputs[i]], attentionMask: [mask[i]], decoderInputIDs: [Array(seq.dropLast())], .inference())
        let lp = try logits.value.logSoftmax(axis: -1)
        var s: Float = 0
        for (t, tok) in seq.dropFirst().enumerated() { s += lp[0, t, tok] }
        return s / Float(seq.count - 1)
    }

    func testBeamSearchKeepsEachSamplesTaskID() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 13)
        try T5TestSupport.injectPoly(model, nTasks: 3, seed: 5)
        let same = [inputs[0], inputs[0], inputs[0]]
        let tasks = [2, 0, 1]
        let ctx = Context(mode: .eval, taskIDs: tasks)             // a recording context: generate must not record
        let gen = GenerationConfig(maxLength: 8, numBeams: 3, eosTokenID: 1)
        let batch = try model.generate(inputIDs: same, config: gen, ctx)
        XCTAssertEqual(ctx.taskIDs, tasks, "task ids restored")
        XCTAssertTrue(ctx.recordsGradients, "recording setting restored")
        for (i, t) in tasks.enumerated() {
            let alone = try model.generate(inputIDs: [inputs[0]], config: gen, .inference(taskIDs: [t]))
            XCTAssertEqual(batch[i], alone[0], "sample \(i) decoded with task \(t)")
        }
        XCTAssertGreaterThan(Set(batch).count, 1, "the tasks lead to different outputs, so the check is meaningful")
        var nocache = gen
        nocache.useCache = false
        XCTAssertEqual(batch, try model.generate(inputIDs: same, config: nocache, ctx))
    }

    func testGenerationErrors() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 12)
        XCTAssertThrowsError(try model.generate(inputIDs: inputs, config: GenerationConfig(numBeams: 0), .inference()))
        XCTAssertThrowsError(try model.generate(inputIDs: inputs, config: GenerationConfig(eosTokenID: 99), .inference()))
    }
}

/// Greedy and beam search against Hugging Face's `generate` on the same tiny random T5 (golden `t5_generate`): the
/// same sequences, token for token, with and without the key/value cache.
final class T5GenerationGoldenTests: XCTestCase {
    func testMatchesHuggingFaceGenerate() throws {
        let dir = IOTestSupport.goldenRoot.appendingPathComponent("t5_generate")
        let model = try T5ForConditionalGeneration.load(from: dir.appendingPathComponent("model"))
        let json = try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("generation.json")))
        func ints(_ v: JSONValue?) throws -> [[Int]] {
            guard case .array(let rows)? = v else { throw TensorError("golden", "malformed generation.json") }
            return try rows.map { row in
                guard case .array(let xs) = row else { throw TensorError("golden", "malformed generation.json") }
                return try xs.map { x in
                    guard case .int(let i) = x else { throw TensorError("golden", "malformed generation.json") }
                    return i
                }
            }
        }
        let inputs = try ints(json["input_ids"]), mask = try ints(json["attention_mask"])
        guard case .array(let runs)? = json["runs"], runs.count == 3 else { return XCTFail("generation.json lists no runs") }
        for run in runs {
            guard case .string(let name)? = run["name"], case .int(let beams)? = run["num_beams"],
                  case .int(let maxLength)? = run["max_length"], let lp = run["length_penalty"]?.doubleValue else {
                return XCTFail("malformed run \(run)")
            }
            let want = try ints(run["sequences"])
            for cache in [true, false] {
                let gen = GenerationConfig(maxLength: maxLength, numBeams: beams, lengthPenalty: Float(lp), useCache: cache)
                let got = try model.generate(inputIDs: inputs, attentionMask: mask, config: gen, .inference())
                XCTAssertEqual(got, want, "\(name), cache \(cache)")
            }
        }
    }
}
