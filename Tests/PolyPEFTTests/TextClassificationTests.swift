import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Multitask text classification: JSONL reading (tasks, shared labels, tokenization, long texts, errors) and the
/// objective a `Trainer` minimises with a Poly adapter on a BERT classifier.
final class TextClassificationTests: XCTestCase {
    static let words = ["red", "green", "blue", "gold", "cat", "dog", "owl", "fox", "sun", "moon", "rain", "snow"]

    /// A WordPiece tokenizer over `words` with BERT's components and template.
    func tokenizer() throws -> Tokenizer {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + Self.words
        return Tokenizer(normalizer: BertNormalizer(), preTokenizer: BertPreTokenizer(),
                         model: try WordPiece(vocab: vocab.enumerated().map { ($1, $0) }, unknownToken: "[UNK]"),
                         postProcessor: try .bert(cls: ("[CLS]", 2), sep: ("[SEP]", 3)), decoder: WordPieceDecoder())
    }

    func write(_ lines: [String]) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("text-\(UUID().uuidString).jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    /// Two tasks over one label space: "first" labels a text by its first word's half of the word list, "last" by
    /// its last word's. The same text can have different labels in the two tasks, so routing by task matters.
    func lines(_ n: Int, seed: UInt64) -> [String] {
        var rng = Xoshiro256(seed: seed)
        return (0..<n).map { i in
            let picked = (0..<Int.random(in: 2...5, using: &rng)).map { _ in Int.random(in: 0..<Self.words.count, using: &rng) }
            let task = i % 2 == 0 ? "first" : "last"
            let word = task == "first" ? picked.first! : picked.last!
            let text = picked.map { Self.words[$0] }.joined(separator: " ")
            return "{\"task\": \"\(task)\", \"text\": \"\(text.uppercased())\", \"label\": \"\(word < Self.words.count / 2 ? "low" : "high")\"}"
        }
    }

    func testReadingTasksLabelsAndErrors() throws {
        let t = try tokenizer()
        let path = try write(["{\"task\": \"a\", \"text\": \"Red cat\", \"label\": 1}", "",
                              "{\"task\": 7, \"text\": \"owl owl owl owl owl owl\", \"label\": \"x\", \"note\": 0}"])
        let d = try TextClassificationData.read(path, tokenizer: t, maxLength: 6)
        XCTAssertEqual(d.taskNames, ["a", "7"])
        XCTAssertEqual(d.labelNames, ["1", "x"])
        XCTAssertEqual(d.samples[0], .init(taskID: 0, labelID: 0, ids: [2, 4, 8, 3], typeIDs: [0, 0, 0, 0]))
        XCTAssertEqual(d.samples[1].ids, [2, 10, 10, 10, 10, 3], "truncated to 6 with the special tokens")
        XCTAssertThrowsError(try TextClassificationData.read(path, tokenizer: t, maxLength: 6, longTexts: .refuse)) {
            XCTAssertEqual("\($0)", "\(path):3: the text is 8 tokens long, more than the model's 6 positions (truncate long texts instead of refusing them to keep it)")
        }
        XCTAssertThrowsError(try TextClassificationData.read(path, tokenizer: t, maxLength: 6, labelNames: ["1", "2"])) {
            XCTAssertEqual("\($0)", "\(path):3: unknown label 'x' (known: 1, 2)")
        }
        for (line, message) in [("{\"task\": \"a\", \"label\": 1}", "missing key \"text\""),
                                ("{\"task\": \"a\", \"text\": 3, \"label\": 1}", "\"text\" must be a string (found integer)"),
                                ("{\"task\": [], \"text\": \"x\", \"label\": 1}", "\"task\" must be a string or an integer (found array)"),
                                ("{\"task\": \" \", \"text\": \"x\", \"label\": 1}", "the task name is empty"),
                                ("{\"task\": \"a\", \"text\": \"x\", \"label\": 1,}", "not valid JSON (expected a string key")] {
            let bad = try write([line])
            XCTAssertThrowsError(try TextClassificationData.read(bad, tokenizer: t, maxLength: 8)) {
                XCTAssertTrue("\($0)".hasPrefix("\(bad):1: \(message)"), "\($0)")
            }
        }
    }

    /// The objective's loss is the classifier's cross-entropy on the padded batch, its evaluation agrees with it,
    /// and a Poly adapter (with the head saved) trained by `Trainer` lowers the validation loss.
    func testObjectiveTrainsAPolyAdapter() throws {
        let t = try tokenizer()
        let train = try TextClassificationData.read(try write(lines(256, seed: 1)), tokenizer: t, maxLength: 16)
        let valid = try TextClassificationData.read(try write(lines(64, seed: 2)), tokenizer: t, maxLength: 16,
                                                     taskNames: train.taskNames, labelNames: train.labelNames)
        let config = try BertConfig(json: ["vocab_size": 16, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                                           "intermediate_size": 32, "max_position_embeddings": 16, "num_labels": 2])
        let model = try BertForSequenceClassification(config: config, seed: 4)
        var poly = PolyConfig(r: 2, targetModules: .names(["query", "value"]), nTasks: 2, nSkills: 2)
        poly.modulesToSave = ["classifier"]
        var rng = Xoshiro256(seed: 5)
        let peft = try PeftModel(wrapping: model, config: poly, using: &rng)
        let objective = try TextClassificationObjective(model: model, data: train, validation: valid)

        let rows = [0, 1, 5]
        let samples = rows.map { train.samples[$0] }
        let (ids, mask, types) = objective.batch(samples)
        XCTAssertEqual(ids.map(\.count), [ids[0].count, ids[0].count, ids[0].count])
        let ctx = Context.inference()
        let direct = try model.loss(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, labels: samples.map(\.labelID),
                                    Context.inference(taskIDs: samples.map(\.taskID)))
        XCTAssertEqual(try objective.loss(batch: rows, ctx).value.scalarValue, direct.value.scalarValue, accuracy: 1e-6)
        XCTAssertEqual(ctx.taskIDs, samples.map(\.taskID))
        let small = valid.subset([0, 1, 2, 3])
        XCTAssertEqual(try objective.evaluate(small, batchSize: 3).loss, try objective.evaluate(small, batchSize: 64).loss, accuracy: 1e-6)

        var training = TrainingConfiguration()
        training.steps = 120
        training.batchSize = 32
        training.learningRate = 5e-2
        training.evalEvery = 0
        let trainer = try Trainer(objective: objective, parameters: peft.trainableParameters(), configuration: training)
        let before = try objective.validate()!.loss
        try trainer.run()
        let after = try objective.validate()!.loss
        XCTAssertLessThan(after, before * 0.9, "validation loss \(before) -> \(after)")
        XCTAssertEqual(trainer.validationHistory.map(\.step), [120])
    }

    /// The built-in text tasks: seeded, labelled by their rules, no unknown tokens, within the tiny model's positions.
    func testSyntheticTextTasks() throws {
        let a = try SyntheticTextTasks(seed: 3, samplesPerTask: (20, 5, 5)), b = try SyntheticTextTasks(seed: 3, samplesPerTask: (20, 5, 5))
        XCTAssertEqual(a.train.samples, b.train.samples)
        XCTAssertEqual(a.train.count, 100)
        XCTAssertEqual(a.validation.count, 25)
        XCTAssertEqual(a.train.labelNames, ["color", "animal", "weather", "food"])
        let config = try BertConfig(json: SyntheticTextTasks.modelConfig)
        for s in a.train.samples + a.test.samples {
            XCTAssertFalse(s.ids.contains(1), "no [UNK]")
            XCTAssertLessThanOrEqual(s.ids.count, config.maxPositionEmbeddings)
            XCTAssertLessThan(s.ids.max()!, config.vocabSize)
        }
        // The rules, on category sequences.
        let cats = [2, 0, 2, 1]
        XCTAssertEqual((0..<5).map { SyntheticTextTasks.label(task: $0, categories: cats) }, [2, 1, 0, 2, 3])
        XCTAssertEqual(SyntheticTextTasks.label(task: 3, categories: [1, 0, 0, 1]), 1, "majority ties: the first in the text")
        XCTAssertEqual(SyntheticTextTasks.label(task: 4, categories: [0, 1, 2, 3]), 0, "nothing absent: color")
        let t = try SyntheticTextTasks.makeTokenizer()
        XCTAssertEqual(try t.encode("The RED fox").tokens, ["[CLS]", "the", "red", "fox", "[SEP]"])
    }

    /// On the pre-trained base, Poly (routed by task) learns the five rules while one LoRA shared by all tasks
    /// cannot tell them apart (the same text has a different label in each task): what routing is for.
    func testPolyLearnsTheTextTasksAndASharedLoRACannot() throws {
        let data = try SyntheticTextTasks(seed: 1, samplesPerTask: (400, 20, 60))
        let base = try SyntheticTextTasks.pretrainedBase(seed: 2)
        var accuracy: [String: Float] = [:]
        for method in ["poly", "lora"] {
            let model = try BertForSequenceClassification(config: base.config, seed: 2)
            try model.loadStateDict(base.stateDict())
            let targets = TargetModules.names(["query", "value", "intermediate.dense", "output.dense"])
            var config: any PeftConfig
            if method == "poly" {
                var c = PolyConfig(r: 4, targetModules: targets, nTasks: 5, nSkills: 4)
                c.modulesToSave = ["classifier"]
                config = c
            } else {
                var c = LoraConfig(r: 16, loraAlpha: 16, targetModules: targets)
                c.modulesToSave = ["classifier"]
                config = c
            }
            var rng = Xoshiro256(seed: 5)
            let peft = try PeftModel(wrapping: model, config: config, using: &rng)
            let objective = try TextClassificationObjective(model: model, data: data.train)
            var training = TrainingConfiguration()
            training.steps = 600
            training.batchSize = 32
            training.learningRate = 1e-2
            training.evalEvery = 0
            try Trainer(objective: objective, parameters: peft.trainableParameters(), configuration: training).run()
            accuracy[method] = try objective.evaluate(data.test).accuracy
        }
        // Chance is 0.25 (four labels); a shared LoRA gets the samples on which the rules agree, and how many moves
        // with the last bits of the kernels (below 0.35 with libm's erf and exp, 0.40 to 0.43 with the vector
        // kernels), so the claim is the gap, not one number.
        XCTAssertGreaterThan(accuracy["poly"]!, 0.55, "\(accuracy)")
        XCTAssertLessThan(accuracy["lora"]!, 0.5, "\(accuracy)")
        XCTAssertGreaterThanOrEqual(accuracy["poly"]! - accuracy["lora"]!, 0.15, "\(accuracy)")
    }
}
