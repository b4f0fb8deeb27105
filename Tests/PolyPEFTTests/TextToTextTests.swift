import Foundation
import XCTest
@testable import PolyPEFT

/// Text-to-text data, objective and the built-in tasks.
final class TextToTextTests: XCTestCase {
    /// On the pre-trained tiny T5, Poly (routed by task) learns the five rewrites far better than one LoRA shared
    /// by all tasks, which cannot tell them apart.
    func testPolyLearnsTheTextToTextTasksBetterThanASharedLoRA() throws {
        let data = try SyntheticTextToTextTasks(seed: 1, samplesPerTask: (400, 20, 40))
        let base = try SyntheticTextToTextTasks.pretrainedBase(seed: 2)
        XCTAssertLessThan(try TextToTextObjective(model: base, data: data.train).evaluate(data.test).exactMatch!, 0.2,
                          "the base alone does not know the tasks")
        var exact: [String: Float] = [:]
        for method in ["poly", "lora"] {
            let model = try T5ForConditionalGeneration(config: base.config, seed: 2)
            try model.loadStateDict(base.stateDict())
            let targets = TargetModules.names(["q", "k", "v", "o", "wi", "wo"])
            let config: any PeftConfig = method == "poly" ? PolyConfig(r: 2, targetModules: targets, nTasks: 5, nSkills: 6)
                : LoraConfig(r: 12, loraAlpha: 12, targetModules: targets)
            var rng = Xoshiro256(seed: 5)
            let peft = try PeftModel(wrapping: model, config: config, using: &rng)
            let objective = TextToTextObjective(model: model, data: data.train)
            var training = TrainingConfiguration()
            training.steps = 600
            training.batchSize = 32
            training.learningRate = 1e-2
            training.evalEvery = 0
            try Trainer(objective: objective, parameters: peft.trainableParameters(), configuration: training).run()
            let e = try objective.evaluate(data.test)
            exact[method] = e.exactMatch!
        }
        XCTAssertGreaterThan(exact["poly"]!, exact["lora"]! + 0.2, "\(exact)")   // measured: 0.52 vs 0.125
    }

    /// Reading: T5's `</s>` after each text, task ids in order of appearance, truncation or refusal per key, and
    /// errors naming the line. The objective's per-sample cross-entropy agrees with the model's own loss.
    func testReadingAndScoring() throws {
        let t = try SyntheticTextToTextTasks.makeTokenizer()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("t2t-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("""
        {"task": "copy", "source": "red fox", "target": "red fox"}

        {"task": 7, "source": "the red fox and gold owl", "target": "color"}
        """.utf8).write(to: URL(fileURLWithPath: path))
        let d = try TextToTextData.read(path, tokenizer: t, maxSourceLength: 4, maxTargetLength: 8)
        XCTAssertEqual(d.taskNames, ["copy", "7"])
        XCTAssertEqual(d.samples[0].sourceIDs.last, 1, "</s>")
        XCTAssertEqual(d.samples[0].sourceIDs, d.samples[0].targetIDs)
        XCTAssertEqual(d.samples[1].sourceIDs.count, 4, "truncated, </s> kept")
        XCTAssertEqual(d.samples[1].sourceIDs.last, 1)
        XCTAssertThrowsError(try TextToTextData.read(path, tokenizer: t, maxSourceLength: 4, maxTargetLength: 8, longTexts: .refuse)) {
            XCTAssertEqual("\($0)", "\(path):3: the source is 7 tokens long, more than the model's 4 positions (truncate long texts instead of refusing them to keep it)")
        }
        XCTAssertThrowsError(try TextToTextData.read(path, tokenizer: t, maxSourceLength: 8, maxTargetLength: 8, taskNames: ["copy"])) {
            XCTAssertEqual("\($0)", "\(path):3: unknown task '7' (known: copy)")
        }
        try Data("{\"task\": \"a\", \"source\": \"red\"}\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TextToTextData.read(path, tokenizer: t, maxSourceLength: 8, maxTargetLength: 8)) {
            XCTAssertEqual("\($0)", "\(path):1: missing key \"target\"")
        }

        let model = try T5ForConditionalGeneration(config: try T5Config(json: SyntheticTextToTextTasks.modelConfig), seed: 1)
        let objective = TextToTextObjective(model: model, data: d)
        let e = try objective.evaluate(d, generate: true)
        var expected = 0.0
        for s in d.samples {
            expected += Double(try model.loss(inputIDs: [s.sourceIDs], attentionMask: nil, labels: [s.targetIDs], .inference()).value.scalarValue)
        }
        XCTAssertEqual(Double(e.loss), expected / 2, accuracy: 1e-5, "each sample's mean token loss, padding ignored")
        XCTAssertNotNil(e.exactMatch)
        XCTAssertEqual(objective.sampleLengths, d.samples.map { $0.sourceIDs.count + $0.targetIDs.count })
    }
}
