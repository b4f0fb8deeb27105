import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// The loss a trainer minimises on a batch of sample indices, and its validation.
public protocol Objective {
    /// Number of samples in the training set.
    var count: Int { get }
    /// Loss on the samples `batch` of the training set, in the given context (whose task ids it sets).
    func loss(batch: [Int], _ ctx: Context) throws -> Variable
    /// Mean loss and mean loss per task id on the objective's validation set (evaluation mode, no gradients), or
    /// nil when it has none.
    func validate() throws -> (loss: Float, perTask: [Int: Float])?
    /// The length of each training sample (its tokens), when batches should be grouped by length to save padding
    /// (`Trainer.batch(at:)`); nil for samples of one size.
    var sampleLengths: [Int]? { get }
}

extension Objective {
    public var sampleLengths: [Int]? { nil }
}

/// Mean squared error of a layer (a base model with adapters) on a multitask regression dataset.
public struct RegressionObjective: Objective {
    public let model: any Layer
    public let data: MultitaskDataset
    public let validation: MultitaskDataset?

    public init(model: any Layer, data: MultitaskDataset, validation: MultitaskDataset? = nil) {
        self.model = model
        self.data = data
        self.validation = validation
    }

    public var count: Int { data.count }

    public func validate() throws -> (loss: Float, perTask: [Int: Float])? {
        try validation.map { try RegressionObjective.evaluate(model, $0) }
    }

    public func loss(batch: [Int], _ ctx: Context) throws -> Variable {
        let b = data.subset(batch)
        ctx.taskIDs = b.taskIDs
        return try Loss.mse(try model.forward(Variable(b.inputs), ctx), b.targets)
    }

    /// Per-task mean squared error of `model` on `dataset`, in evaluation mode.
    public static func evaluate(_ model: any Layer, _ dataset: MultitaskDataset) throws -> (loss: Float, perTask: [Int: Float]) {
        let y = try model.forward(Variable(dataset.inputs), Context.inference(taskIDs: dataset.taskIDs)).value    // [N, out]
        let diff = try (y - dataset.targets).squared().mean(axes: [1]).scalars                                 // [N]
        var sums: [Int: (Double, Int)] = [:]
        var total = 0.0
        for (i, t) in dataset.taskIDs.enumerated() {
            let s = sums[t] ?? (0, 0)
            sums[t] = (s.0 + Double(diff[i]), s.1 + 1)
            total += Double(diff[i])
        }
        return (Float(total / Double(Swift.max(dataset.count, 1))), sums.mapValues { Float($0.0 / Double($0.1)) })
    }
}
