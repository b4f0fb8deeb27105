import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// The training loop: batches in a seeded order, train-mode forward, loss, backward, clipping, an optimizer step
/// with a learning-rate schedule, periodic validation, and checkpoints from which a run resumes bit for bit.
///
/// The batch order depends only on `(seed, step)` (each epoch is a Fisher-Yates shuffle seeded from the seed and the
/// epoch number), and the routers' sampling noise comes from one generator whose state is checkpointed, so a resumed
/// run draws exactly what the uninterrupted run would have drawn.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let objective: any Objective
    public let parameters: [(name: String, parameter: Parameter)]
    public let optimizer: Adam
    /// Optimizer steps taken so far.
    public private(set) var step = 0
    /// The generator for dropout and router sampling.
    public private(set) var rng: Xoshiro256
    /// Training loss after every step, and validation loss at each evaluation: (step, loss).
    public private(set) var lossHistory: [Float] = []
    public private(set) var validationHistory: [(step: Int, loss: Float)] = []

    /// Trains `parameters` with AdamW, one optimiser group per role: `.adapter` at `learningRate` with
    /// `weightDecay`, `.router` at `routerLearningRate` without decay (groups named `adapter` and `router`).
    public init(objective: any Objective, parameters: TrainableParameters, configuration: TrainingConfiguration) throws {
        try configuration.validate()
        guard !parameters.all.isEmpty else { throw ConfigError("nothing to train: no trainable parameters") }
        self.objective = objective
        self.parameters = parameters.all
        self.configuration = configuration
        let groups = parameters.groups.map { role, members in
            switch role {
            case .adapter:
                ParameterGroup(name: role.rawValue, parameters: members, learningRate: configuration.learningRate,
                               weightDecay: configuration.weightDecay)
            case .router:
                ParameterGroup(name: role.rawValue, parameters: members, learningRate: configuration.routerLearningRate)
            }
        }
        optimizer = Adam.adamW(groups)
        rng = Xoshiro256(seed: configuration.seed &+ 0x5EED)
    }

    /// The sample indices of the batch used at `step`.
    ///
    /// Each epoch is a seeded shuffle cut into `n / batchSize` batches (the remainder waits for the next epoch's
    /// shuffle). With `groupByLength`, when the objective reports sample lengths (`Objective.sampleLengths`), batches
    /// are grouped by length, as transformers' `group_by_length` does, so that little of a padded batch is padding:
    ///
    /// ```
    /// shuffle -> megabatches of 50 batches -> each sorted by length, longest first -> cut into batches
    ///         -> the batches in a seeded random order
    /// ```
    public func batch(at step: Int) -> [Int] {
        let n = objective.count, b = Swift.min(configuration.batchSize, n)
        let perEpoch = Swift.max(n / b, 1)
        let epoch = step / perEpoch, index = step % perEpoch
        if epochOrder?.epoch != epoch {
            var g = Xoshiro256(seed: configuration.seed ^ (UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15))
            var order = Array(0..<n)
            for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(g.next() % UInt64(i + 1))) }
            if let lengths = sampleLengths {
                order = Self.groupedByLength(order, lengths: lengths, batchSize: b, batches: perEpoch, using: &g)
            }
            epochOrder = (epoch, order)
        }
        return Array(epochOrder!.order[(index * b)..<((index + 1) * b)])
    }

    /// Megabatches of the shuffled `order` sorted by `lengths` (longest first, ties in shuffled order), cut into
    /// `batches` batches of `batchSize` whose order is then shuffled with `g`.
    static func groupedByLength(_ order: [Int], lengths: [Int], batchSize b: Int, batches: Int,
                                using g: inout Xoshiro256) -> [Int] {
        let mega = b * lengthGroupBatches
        var sorted: [Int] = []
        sorted.reserveCapacity(order.count)
        for start in stride(from: 0, to: order.count, by: mega) {
            let group = order[start..<Swift.min(start + mega, order.count)].enumerated()
            sorted += group.sorted { lengths[$0.element] != lengths[$1.element]
                ? lengths[$0.element] > lengths[$1.element] : $0.offset < $1.offset }.map(\.element)
        }
        var batchOrder = Array(0..<batches)
        for i in stride(from: batches - 1, to: 0, by: -1) { batchOrder.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        return batchOrder.flatMap { sorted[($0 * b)..<Swift.min(($0 + 1) * b, sorted.count)] }
    }

    /// Batches per megabatch when grouping by length (transformers' `LengthGroupedSampler` uses 50).
    static let lengthGroupBatches = 50

    /// The objective's sample lengths, read once, when batches are grouped by length.
    private lazy var sampleLengths: [Int]? = configuration.groupByLength ? objective.sampleLengths : nil

    /// The shuffled order of the last epoch asked for (a cache: it depends only on the seed and the epoch).
    private var epochOrder: (epoch: Int, order: [Int])?

    /// One optimizer step; returns the batch loss. A NaN or infinite loss or gradient throws a `DivergenceError`
    /// naming the step, with nothing updated: the trainer stays at the last good step, ready to be checkpointed.
    @discardableResult
    public func trainStep() throws -> Float {
        let rows = batch(at: step)
        let loss: Variable
        do {
            loss = try optimizer.trainingStep(rng: &rng, lrScale: configuration.schedule.multiplier(step: step),
                                              clipNorm: configuration.clipNorm) { try objective.loss(batch: rows, $0) }
        } catch let e as DivergenceError {
            throw DivergenceError(step: step + 1, e.message)
        }
        step += 1
        let l = loss.value.scalarValue
        lossHistory.append(l)
        return l
    }

    /// Runs until `configuration.steps` (or until `shouldStop` returns true, checked between steps), validating the
    /// objective every `evalEvery` steps and at the end, and reporting through `onEvent` (which may throw to end the
    /// run, e.g. when a checkpoint cannot be written). A diverged step ends the run with a `DivergenceError`.
    public func run(shouldStop: () -> Bool = { false }, onEvent: (TrainingEvent) throws -> Void = { _ in }) throws {
        while step < configuration.steps && !shouldStop() {
            let l = try trainStep()
            try onEvent(.step(step: step, total: configuration.steps, loss: l))
            let e = configuration.evalEvery
            if (e > 0 && step % e == 0) || step == configuration.steps, let (v, perTask) = try objective.validate() {
                validationHistory.append((step, v))
                try onEvent(.validation(step: step, loss: v, perTask: perTask))
            }
            try onEvent(.completed(step: step))
        }
    }

    // MARK: Checkpoints

    /// Everything besides the parameter values that resuming needs.
    public struct State: Codable, Equatable {
        public var configuration: TrainingConfiguration
        public var step: Int
        public var rng: Xoshiro256
        public var lossHistory: [Float]
        public var validationSteps: [Int]
        public var validationLosses: [Float]
        public var optimizerKind: String
        public var optimizerSteps: Int
    }

    public var state: State {
        State(configuration: configuration, step: step, rng: rng, lossHistory: lossHistory,
              validationSteps: validationHistory.map(\.step), validationLosses: validationHistory.map(\.loss),
              optimizerKind: optimizer.state().kind, optimizerSteps: optimizer.stepCount)
    }

    /// The optimizer's buffers as named tensors (for a safetensors file).
    public func optimizerTensors() -> [String: Tensor] {
        let s = optimizer.state()
        var out: [String: Tensor] = [:]
        for (k, v) in s.buffers { out[k] = Tensor(v, shape: s.shapes[k] ?? [v.count]) }
        return out
    }

    /// Restores a checkpoint taken from a trainer over the same parameters. A state no run of this configuration can
    /// reach (a step outside `0...steps`, more optimizer steps than steps) is an error naming the field.
    public func restore(_ state: State, optimizerTensors: [String: Tensor]) throws {
        guard state.configuration == configuration else {
            throw ConfigError("checkpoint was written with different training settings; resume with the same options")
        }
        guard (0...configuration.steps).contains(state.step) else {
            throw ConfigError("checkpoint step is \(state.step), not in 0...\(configuration.steps)")
        }
        guard (0...state.step).contains(state.optimizerSteps) else {
            throw ConfigError("checkpoint optimizerSteps is \(state.optimizerSteps), not in 0...\(state.step) (its step)")
        }
        try optimizer.load(OptimizerState(kind: state.optimizerKind, stepCount: state.optimizerSteps,
                                          buffers: optimizerTensors.mapValues { $0.scalars },
                                          shapes: optimizerTensors.mapValues(\.shape)))
        step = state.step
        rng = state.rng
        lossHistory = state.lossHistory
        validationHistory = zip(state.validationSteps, state.validationLosses).map { ($0, $1) }
    }
}
