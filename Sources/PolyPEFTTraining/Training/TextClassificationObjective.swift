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
/// loss:   mean over the batch of -log softmax(logits)[label]
/// ```
public struct TextClassificationObjective: Objective {
    public let model: BertForSequenceClassification
    public let data: TextClassificationData
    public let validation: TextClassificationData?
    /// The id written into padding positions.
    public let padID: Int

    public init(model: BertForSequenceClassification, data: TextClassificationData, validation: TextClassificationData? = nil,
                padID: Int = 0) throws {
        guard data.labelNames.count == model.config.numLabels else {
            throw ConfigError("the data has \(data.labelNames.count) labels but the classifier \(model.config.numLabels) outputs")
        }
        self.model = model
        self.data = data
        self.validation = validation
        self.padID = padID
    }

    public var count: Int { data.count }

    /// Ids, mask and token types of `samples`, padded on the right to the longest.
    func batch(_ samples: [TextClassificationData.Sample]) -> (ids: [[Int]], mask: [[Int]], types: [[Int]]) {
        let t = samples.map(\.ids.count).max() ?? 0
        func pad(_ a: [Int], _ v: Int) -> [Int] { a + [Int](repeating: v, count: t - a.count) }
        return (samples.map { pad($0.ids, padID) }, samples.map { pad([Int](repeating: 1, count: $0.ids.count), 0) },
                samples.map { pad($0.typeIDs, 0) })
    }

    public func loss(batch rows: [Int], _ ctx: Context) throws -> Variable {
        let samples = rows.map { data.samples[$0] }
        ctx.taskIDs = samples.map(\.taskID)
        let (ids, mask, types) = batch(samples)
        return try model.loss(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, labels: samples.map(\.labelID), ctx)
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
            let (ids, mask, types) = batch(samples)
            let logits = try model.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types,
                                           Context.inference(taskIDs: samples.map(\.taskID))).value   // [B, labels]
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
