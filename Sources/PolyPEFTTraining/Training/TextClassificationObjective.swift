import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Cross-entropy of a BERT classifier (with adapters; one output per label of the shared label space) on multitask
/// text classification, each sample routed by its task.
///
/// ```
/// batch:  ids padded to the longest sample of the batch (pad id 0, mask 0), task ids per sample
/// logits: the classifier's [B, labels] (+ TaskHeads.mask with one head per task)
/// loss:   mean over the batch of -log softmax(logits)[label]
/// ```
/// Its samples report their lengths, so a trainer with `groupByLength` batches texts of similar length together.
public struct TextClassificationObjective: Objective {
    public let model: BertForSequenceClassification
    public let data: TextClassificationData
    public let validation: TextClassificationData?
    /// The id written into padding positions.
    public let padID: Int
    /// One head per task (labels are then the heads' outputs), or nil for one label space shared by all tasks.
    public let heads: TaskHeads?

    public init(model: BertForSequenceClassification, data: TextClassificationData, validation: TextClassificationData? = nil,
                padID: Int = 0, heads: TaskHeads? = nil) throws {
        let outputs = heads?.outputCount ?? data.labelNames.count
        guard outputs == model.config.numLabels, data.labelNames.count == outputs else {
            throw ConfigError("the data has \(data.labelNames.count) labels but the classifier \(model.config.numLabels) outputs"
                + (heads.map { " (its task heads \($0.outputCount))" } ?? ""))
        }
        self.model = model
        self.data = data
        self.validation = validation
        self.padID = padID
        self.heads = heads
    }

    public var count: Int { data.count }

    public var sampleLengths: [Int]? { data.samples.map(\.ids.count) }

    /// Ids, mask and token types of `samples`, padded on the right to the longest.
    public func batch(_ samples: [TextClassificationData.Sample]) -> (ids: [[Int]], mask: [[Int]], types: [[Int]]) {
        let t = samples.map(\.ids.count).max() ?? 0
        func pad(_ a: [Int], _ v: Int) -> [Int] { a + [Int](repeating: v, count: t - a.count) }
        return (samples.map { pad($0.ids, padID) }, samples.map { pad([Int](repeating: 1, count: $0.ids.count), 0) },
                samples.map { pad($0.typeIDs, 0) })
    }

    public func loss(batch rows: [Int], _ ctx: Context) throws -> Variable {
        let samples = rows.map { data.samples[$0] }
        return try Loss.crossEntropy(try logits(samples, ctx), targets: samples.map(\.labelID))
    }

    /// The logits of `samples` `[B, labels]` in `ctx` (whose task ids it sets), masked to each task's head.
    public func logits(_ samples: [TextClassificationData.Sample], _ ctx: Context) throws -> Variable {
        ctx.taskIDs = samples.map(\.taskID)
        let (ids, mask, types) = batch(samples)
        let logits = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx)
        guard let heads else { return logits }
        return try logits + Variable(heads.mask(tasks: samples.map(\.taskID)))
    }

    public func validate() throws -> (loss: Float, perTask: [Int: Float])? {
        try validation.map { v in let e = try evaluate(v); return (e.loss, e.perTask.mapValues(\.loss)) }
    }

    /// Mean cross-entropy and accuracy, overall and per task, in evaluation mode, `batchSize` samples at a time.
    public func evaluate(_ set: TextClassificationData, batchSize: Int = 64)
        throws -> (loss: Float, accuracy: Float, perTask: [Int: (loss: Float, accuracy: Float)]) {
        var sums: [Int: (loss: Double, correct: Int, n: Int)] = [:]
        for start in stride(from: 0, to: set.count, by: batchSize) {
            let samples = Array(set.samples[start..<Swift.min(start + batchSize, set.count)])
            let logits = try self.logits(samples, Context.inference(taskIDs: [])).value   // [B, labels]
            let k = logits.shape[1], v = logits.scalars
            for (i, s) in samples.enumerated() {
                let row = v[(i * k)..<((i + 1) * k)]
                let m = row.max()!
                let logSum = Double(m) + log(row.reduce(0.0) { $0 + exp(Double($1 - m)) })
                let predicted = row.indices.max { row[$0] < row[$1] }! - i * k
                var acc = sums[s.taskID] ?? (0, 0, 0)
                acc.loss += logSum - Double(row[i * k + s.labelID])
                acc.correct += predicted == s.labelID ? 1 : 0
                acc.n += 1
                sums[s.taskID] = acc
            }
        }
        let n = Double(Swift.max(set.count, 1))
        let loss = sums.values.reduce(0) { $0 + $1.loss } / n, correct = sums.values.reduce(0) { $0 + $1.correct }
        return (Float(loss), Float(Double(correct) / n),
                sums.mapValues { (Float($0.loss / Double($0.n)), Float(Double($0.correct) / Double($0.n))) })
    }
}
