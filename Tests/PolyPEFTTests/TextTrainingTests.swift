import Foundation
import XCTest
@testable import PolyPEFT

/// Length-grouped batches, one head per task, sentence embeddings and classifiers with a chosen label count.
final class TextTrainingTests: XCTestCase {
    /// An objective over samples of given lengths (the loss is never asked for).
    struct Lengths: Objective {
        let lengths: [Int]
        var count: Int { lengths.count }
        var sampleLengths: [Int]? { lengths }
        func loss(batch: [Int], _ ctx: Context) throws -> Variable { Variable(Tensor.zeros([1])) }
        func validate() throws -> (loss: Float, perTask: [Int: Float])? { nil }
    }

    /// Every epoch still visits `n / b * b` distinct samples once; batches hold samples of similar length; the
    /// order depends only on the seed; without `groupByLength` (or lengths) batches are the plain shuffle.
    func testBatchesAreGroupedByLength() throws {
        var g = Xoshiro256(seed: 3)
        let n = 1037, b = 8
        let lengths = (0..<n).map { _ in Int.random(in: 1...128, using: &g) }
        var config = TrainingConfiguration()
        config.batchSize = b
        config.seed = 9
        let p = Parameter(Tensor.zeros([1]))
        let make = { (o: any Objective) in try Trainer(objective: o, parameters: TrainableParameters([("p", p)]), configuration: config) }
        let ungrouped = try make(Lengths(lengths: lengths))
        config.groupByLength = true
        let grouped = try make(Lengths(lengths: lengths)), again = try make(Lengths(lengths: lengths))
        let perEpoch = n / b
        var spread = 0, plainSpread = 0
        let plain = try make(RegressionObjective(model: Linear(weight: Tensor.zeros([1, 1]), bias: nil), data: try MultitaskDataset(
            inputs: Tensor.zeros([n, 1]), targets: Tensor.zeros([n, 1]), taskIDs: [Int](repeating: 0, count: n), taskNames: ["t"])))
        for epoch in 0..<2 {
            var seen = Set<Int>()
            for s in (epoch * perEpoch)..<((epoch + 1) * perEpoch) {
                let batch = grouped.batch(at: s)
                XCTAssertEqual(batch.count, b)
                XCTAssertEqual(batch, again.batch(at: s))
                seen.formUnion(batch)
                let l = batch.map { lengths[$0] }
                spread += l.max()! - l.min()!
                XCTAssertEqual(ungrouped.batch(at: s), plain.batch(at: s))
                let pl = plain.batch(at: s).map { lengths[$0] }
                plainSpread += pl.max()! - pl.min()!
            }
            XCTAssertEqual(seen.count, perEpoch * b, "epoch \(epoch): each sample at most once")
        }
        XCTAssertLessThan(spread * 10, plainSpread, "grouped batches pad far less (\(spread) vs \(plainSpread))")
        XCTAssertNotEqual(grouped.batch(at: 0), grouped.batch(at: perEpoch), "epochs differ")
    }

    func testTaskHeadsRelabelMaskAndRefuseUnseenPairs() throws {
        let s = { (t: Int, l: Int) in TextClassificationData.Sample(taskID: t, labelID: l, ids: [2, 3], typeIDs: [0, 0]) }
        let data = TextClassificationData(taskNames: ["a", "b"], labelNames: ["yes", "no", "maybe"],
                                          samples: [s(0, 1), s(1, 2), s(0, 0), s(1, 0), s(0, 1)])
        let heads = TaskHeads(data)
        XCTAssertEqual(heads.labels, [["no", "yes"], ["maybe", "yes"]])
        XCTAssertEqual(heads.offsets, [0, 2])
        XCTAssertEqual(heads.outputCount, 4)
        XCTAssertEqual(heads.output(task: 1, label: "yes"), 3)
        XCTAssertNil(heads.output(task: 1, label: "no"))
        let relabelled = try heads.relabel(data, source: "f")
        XCTAssertEqual(relabelled.samples.map(\.labelID), [0, 2, 1, 3, 0])
        XCTAssertEqual(relabelled.labelNames, ["no", "yes", "maybe", "yes"])
        XCTAssertEqual(heads.mask(tasks: [1, 0]).scalars, [-1e9, -1e9, 0, 0, 0, 0, -1e9, -1e9])
        let unseen = TextClassificationData(taskNames: ["a", "b"], labelNames: ["yes", "no"], samples: [s(0, 0), s(1, 1)])
        XCTAssertThrowsError(try heads.relabel(unseen, source: "f")) {
            XCTAssertEqual("\($0)", "f: sample 2: task 'b' was not trained on label 'no' (its labels: maybe, yes)")
        }
        XCTAssertThrowsError(try TaskHeads(labels: [["x"], []]).validate(taskCount: 2, source: "run.json")) {
            XCTAssertEqual("\($0)", "run.json: the head of task 1 has no labels")
        }
    }

    /// With one head per task, the loss and the predictions ignore other tasks' outputs: the objective's loss is the
    /// cross-entropy of the task's slice of the logits.
    func testPerTaskHeadLossIsTheCrossEntropyOfTheTasksSlice() throws {
        let config = try BertConfig(json: ["vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "intermediate_size": 16, "max_position_embeddings": 8, "num_labels": 5])
        let model = try BertForSequenceClassification(config: config, seed: 1)
        let heads = TaskHeads(labels: [["p", "q"], ["r", "s", "t"]])
        let samples = [TextClassificationData.Sample(taskID: 1, labelID: 4, ids: [2, 5, 3], typeIDs: [0, 0, 0]),
                       .init(taskID: 0, labelID: 1, ids: [2, 7, 8, 3], typeIDs: [0, 0, 0, 0])]
        let data = TextClassificationData(taskNames: ["a", "b"], labelNames: ["p", "q", "r", "s", "t"], samples: samples)
        let objective = try TextClassificationObjective(model: model, data: data, heads: heads)
        let (ids, mask, types) = objective.batch(samples)
        let logits = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, .inference()).value.scalars
        func ce(_ row: [Float], _ label: Int) -> Double {
            let m = row.max()!
            return Double(m) + log(row.reduce(0.0) { $0 + exp(Double($1 - m)) }) - Double(row[label])
        }
        let expected = (ce(Array(logits[7..<10]), 2) + ce(Array(logits[0..<2]), 1)) / 2
        XCTAssertEqual(Double(try objective.loss(batch: [0, 1], .inference()).value.scalarValue), expected, accuracy: 1e-5)
        XCTAssertEqual(Double(try objective.evaluate(data).loss), expected, accuracy: 1e-5)
        XCTAssertEqual(objective.sampleLengths, [3, 4])
    }

    /// Mean pooling over the mask and L2 normalisation, against a direct computation; padding does not change a
    /// text's embedding.
    func testSentenceEmbeddingsAreMaskedMeansNormalised() throws {
        let config = try BertConfig(json: ["vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "intermediate_size": 16, "max_position_embeddings": 8])
        let bert = try BertModel(config: config, seed: 2)
        let ids = [[2, 5, 6, 3], [2, 9, 3, 0]], mask = [[1, 1, 1, 1], [1, 1, 1, 0]]
        let e = try bert.sentenceEmbeddings(inputIDs: ids, attentionMask: mask, .inference())
        XCTAssertEqual(e.shape, [2, 8])
        let alone = try bert.sentenceEmbeddings(inputIDs: [[2, 9, 3]], attentionMask: [[1, 1, 1]], .inference())
        let h = try bert.forward(inputIDs: [[2, 9, 3]], attentionMask: [[1, 1, 1]], .inference()).sequence.value.scalars
        var mean = (0..<8).map { k in (0..<3).map { Double(h[$0 * 8 + k]) }.reduce(0, +) / 3 }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        mean = mean.map { $0 / norm }
        for k in 0..<8 {
            XCTAssertEqual(Double(alone.scalars[k]), mean[k], accuracy: 1e-5)
            XCTAssertEqual(e.scalars[8 + k], alone.scalars[k], accuracy: 1e-5, "padding is ignored")
        }
        XCTAssertThrowsError(try bert.sentenceEmbeddings(inputIDs: ids, attentionMask: [[1, 1]], .inference()))
    }

    /// `numLabels` sizes a fresh head; a checkpoint's head of another size is an error, not a silent reshape.
    func testClassifierLoadsWithAChosenLabelCount() throws {
        let dir = temporaryDirectory()
        let config: JSONValue = ["model_type": "bert", "vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 8, "num_labels": 3]
        let trained = try BertForSequenceClassification(config: try BertConfig(json: config), seed: 4)
        try HFModelFolder.write(config: config, tensors: trained.stateDict().filter { !$0.key.hasPrefix("bert.pooler") }, to: dir)
        let (model, newHead, newPooler) = try BertForSequenceClassification.load(from: dir, numLabels: 3)
        XCTAssertFalse(newHead)
        XCTAssertTrue(newPooler)
        XCTAssertEqual(model.config.numLabels, 3)
        XCTAssertThrowsError(try BertForSequenceClassification.load(from: dir, numLabels: 7)) {
            XCTAssertEqual("\($0)", "\(dir.path): its head 'classifier.weight' has 3 labels, not the 7 asked for; use the encoder without its head")
        }
        let encoderOnly = temporaryDirectory()
        try HFModelFolder.write(config: config, tensors: trained.stateDict().filter { $0.key.hasPrefix("bert.") }, to: encoderOnly)
        let (seven, fresh, _) = try BertForSequenceClassification.load(from: encoderOnly, numLabels: 7)
        XCTAssertTrue(fresh)
        XCTAssertEqual(try seven.forward(inputIDs: [[2, 5, 3]], .inference()).shape, [1, 7])
    }
}
