import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Cross-entropy of a T5 (with adapters) on multitask text-to-text data, each sample routed by its task, and exact
/// match of its greedy generations.
///
/// ```
/// batch:   sources padded to the longest of the batch (pad id, mask 0); labels = targets padded with -100
/// loss:    mean over the batch's target tokens of -log p(target token | source, earlier target tokens)
/// exact:   the greedy generation (after the decoder start token, up to and with EOS) equals the target's ids
/// ```
public struct TextToTextObjective: Objective {
    public let model: T5ForConditionalGeneration
    public let data: TextToTextData
    public let validation: TextToTextData?

    public init(model: T5ForConditionalGeneration, data: TextToTextData, validation: TextToTextData? = nil) {
        self.model = model
        self.data = data
        self.validation = validation
    }

    public var count: Int { data.count }

    public var sampleLengths: [Int]? { data.samples.map { $0.sourceIDs.count + $0.targetIDs.count } }

    /// Source ids and mask padded on the right, and labels padded with -100.
    public func batch(_ samples: [TextToTextData.Sample]) -> (ids: [[Int]], mask: [[Int]], labels: [[Int]]) {
        let s = samples.map(\.sourceIDs.count).max() ?? 0, t = samples.map(\.targetIDs.count).max() ?? 0
        let pad = model.config.padTokenID
        func fill(_ a: [Int], _ n: Int, _ v: Int) -> [Int] { a + [Int](repeating: v, count: n - a.count) }
        return (samples.map { fill($0.sourceIDs, s, pad) }, samples.map { fill([Int](repeating: 1, count: $0.sourceIDs.count), s, 0) },
                samples.map { fill($0.targetIDs, t, -100) })
    }

    public func loss(batch rows: [Int], _ ctx: Context) throws -> Variable {
        let samples = rows.map { data.samples[$0] }
        ctx.taskIDs = samples.map(\.taskID)
        let (ids, mask, labels) = batch(samples)
        return try model.loss(inputIDs: ids, attentionMask: mask, labels: labels, ctx)
    }

    public func validate() throws -> (loss: Float, perTask: [Int: Float])? {
        try validation.map { v in let e = try evaluate(v, generate: false); return (e.loss, e.perTask.mapValues(\.loss)) }
    }

    /// Greedy generations of `samples` (ids after the decoder start token, ending with EOS when one was produced),
    /// at most `maxNewTokens` each.
    public func generate(_ samples: [TextToTextData.Sample], maxNewTokens: Int) throws -> [[Int]] {
        let (ids, mask, _) = batch(samples)
        let out = try model.generate(inputIDs: ids, attentionMask: mask, config: GenerationConfig(maxLength: maxNewTokens + 1),
                                     Context.inference(taskIDs: samples.map(\.taskID)))
        return out.map { Array($0.dropFirst()) }
    }

    /// Mean per-token cross-entropy (each sample's mean, averaged over samples) and, when `generate`, the share of
    /// samples whose greedy generation is exactly the target; overall and per task, in evaluation mode.
    public func evaluate(_ set: TextToTextData, batchSize: Int = 64, generate: Bool = true)
        throws -> (loss: Float, exactMatch: Float?, perTask: [Int: (loss: Float, exactMatch: Float?)]) {
        var sums: [Int: (loss: Double, exact: Int, n: Int)] = [:]
        for start in stride(from: 0, to: set.count, by: batchSize) {
            let samples = Array(set.samples[start..<Swift.min(start + batchSize, set.count)])
            let ctx = Context.inference(taskIDs: samples.map(\.taskID))
            // One sample at a time would be slow; the batch's loss is per token, so each sample is scored apart
            // from the logits: -log softmax at its own target positions.
            let (ids, mask, labels) = batch(samples)
            let logits = try model.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: try model.shiftRight(labels), ctx).value
            let t = logits.shape[1], v = logits.shape[2], values = logits.scalars
            let generated = generate ? try self.generate(samples, maxNewTokens: samples.map(\.targetIDs.count).max()!) : nil
            for (i, s) in samples.enumerated() {
                var total = 0.0
                for (j, label) in s.targetIDs.enumerated() {
                    let row = values[((i * t + j) * v)..<((i * t + j + 1) * v)]
                    let m = row.max()!
                    total += Double(m) + log(row.reduce(0.0) { $0 + exp(Double($1 - m)) }) - Double(row[row.startIndex + label])
                }
                var acc = sums[s.taskID] ?? (0, 0, 0)
                acc.loss += total / Double(Swift.max(s.targetIDs.count, 1))
                acc.exact += generated.map { $0[i] == s.targetIDs ? 1 : 0 } ?? 0
                acc.n += 1
                sums[s.taskID] = acc
            }
        }
        let n = Double(Swift.max(set.count, 1))
        let loss = sums.values.reduce(0) { $0 + $1.loss } / n, exact = sums.values.reduce(0) { $0 + $1.exact }
        return (Float(loss), generate ? Float(Double(exact) / n) : nil,
                sums.mapValues { (Float($0.loss / Double($0.n)), generate ? Float(Double($0.exact) / Double($0.n)) : nil) })
    }
}
