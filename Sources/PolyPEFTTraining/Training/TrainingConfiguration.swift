import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Hyper-parameters of a training run. Saved in checkpoints, so a resumed run continues with the same settings.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    /// Total optimizer steps.
    public var steps = 2000
    public var batchSize = 256
    /// Learning rate of the `.adapter` parameters: skills (LoRA factors) and any other trainable parameter.
    public var learningRate: Float = 1e-2
    /// Learning rate of the `.router` parameters (`ParameterRole`; Poly learns its allocation faster than its skills).
    public var routerLearningRate: Float = 1e-1
    public var weightDecay: Float = 0
    /// Global gradient-norm clip (0 disables).
    public var clipNorm: Float = 1
    /// Linear warm-up steps before cosine decay (0 for none).
    public var warmupSteps = 50
    /// Evaluate on the validation split every this many steps (0: only at the end).
    public var evalEvery = 250
    /// Seed of the batch order and of the routers' sampling noise.
    public var seed: UInt64 = 0
    /// Batch samples of similar length together (`Trainer.batch(at:)`), when the objective reports lengths: less
    /// padding, so faster steps on real text, but batches that are less random, which can cost accuracy (on the
    /// built-in text tasks, whose labels depend on word positions, it does).
    public var groupByLength = false

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case steps, batchSize, learningRate, routerLearningRate, weightDecay, clipNorm, warmupSteps, evalEvery, seed, groupByLength
    }

    /// Decodes a saved configuration; `groupByLength` may be absent (files written before it existed: false).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        steps = try c.decode(Int.self, forKey: .steps)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        routerLearningRate = try c.decode(Float.self, forKey: .routerLearningRate)
        weightDecay = try c.decode(Float.self, forKey: .weightDecay)
        clipNorm = try c.decode(Float.self, forKey: .clipNorm)
        warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
        evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        seed = try c.decode(UInt64.self, forKey: .seed)
        groupByLength = try c.decodeIfPresent(Bool.self, forKey: .groupByLength) ?? false
    }

    /// Settings that pre-train the built-in tiny models: batches of 32, no weight decay, no validation.
    public static func pretraining(steps: Int, learningRate: Float, seed: UInt64) -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.steps = steps
        c.batchSize = 32
        c.learningRate = learningRate
        c.weightDecay = 0
        c.evalEvery = 0
        c.seed = seed
        return c
    }

    public var schedule: LRSchedule { .cosine(warmupSteps: warmupSteps, totalSteps: steps) }

    public func validate() throws {
        guard steps >= 1 else { throw ConfigError("steps must be at least 1, got \(steps)") }
        guard batchSize >= 1 else { throw ConfigError("batch size must be at least 1, got \(batchSize)") }
        for (name, v) in [("learning rate", learningRate), ("router learning rate", routerLearningRate)] where !(v > 0 && v.isFinite) {
            throw ConfigError("\(name) must be a positive number, got \(v)")
        }
        guard weightDecay >= 0 else { throw ConfigError("weight decay must be non-negative, got \(weightDecay)") }
        guard clipNorm >= 0 && clipNorm.isFinite else { throw ConfigError("clip norm must be a number >= 0, got \(clipNorm)") }
        guard warmupSteps >= 0 else { throw ConfigError("warm-up steps must be non-negative, got \(warmupSteps)") }
        guard evalEvery >= 0 else { throw ConfigError("evaluation interval must be non-negative, got \(evalEvery)") }
    }
}

/// What a trainer reports while it runs (the library never prints; the CLI renders these).
public enum TrainingEvent: Sendable {
    /// After an optimizer step: the training loss of that batch.
    case step(step: Int, total: Int, loss: Float)
    /// After an evaluation: mean validation loss and the loss of each task, by task id.
    case validation(step: Int, loss: Float, perTask: [Int: Float])
    /// A step and its validation (if any) are done: the trainer's state is whole, so a checkpoint taken now
    /// resumes bit for bit (one taken between `.step` and `.validation` would skip that validation).
    case completed(step: Int)
}
