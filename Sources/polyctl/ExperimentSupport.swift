import Foundation
import PolyPEFT

/// A trained adapter kept as values, so that experiments can rebuild fresh copies of it at will.
struct TrainedAdapter {
    let config: any PeftConfig
    let tensors: [String: Tensor]
    let baseWeights: [String: Tensor]
    let testLoss: Float

    /// Trains `config` on the built-in `data` with `training` settings (the same loop as `polyctl train`).
    static func train(_ config: any PeftConfig, data: SyntheticTasks, training: TrainingConfiguration, seed: UInt64) throws -> TrainedAdapter {
        try train(config, baseWeights: data.baseWeights, train: data.train, test: data.test, training: training,
                  initSeed: seed &+ 7)
    }

    /// Trains `config` on a frozen base with `baseWeights`, adapter initialised from `initSeed`; scored on `test`.
    /// Returns nil when `shouldStop` ends the training early (an interrupt).
    static func train(_ config: any PeftConfig, baseWeights: [String: Tensor], train: MultitaskDataset, test: MultitaskDataset,
                      training: TrainingConfiguration, initSeed: UInt64, shouldStop: () -> Bool) throws -> TrainedAdapter? {
        let base = try MLPShape.model(baseWeights)
        var g = Xoshiro256(seed: initSeed)
        let peft = try PeftModel(wrapping: base, config: config, using: &g)
        let trainer = try Trainer(objective: RegressionObjective(model: base, data: train),
                                  parameters: peft.trainableParameters(), configuration: training)
        try trainer.run(shouldStop: shouldStop)
        guard trainer.step >= training.steps else { return nil }
        return TrainedAdapter(config: config, tensors: try peft.adapterTensors(), baseWeights: baseWeights,
                              testLoss: try RegressionObjective.evaluate(base, test).loss)
    }

    /// The same, run to the end.
    static func train(_ config: any PeftConfig, baseWeights: [String: Tensor], train: MultitaskDataset, test: MultitaskDataset,
                      training: TrainingConfiguration, initSeed: UInt64) throws -> TrainedAdapter {
        try self.train(config, baseWeights: baseWeights, train: train, test: test, training: training, initSeed: initSeed,
                       shouldStop: { false })!
    }

    /// A fresh model with this adapter loaded.
    func copy() throws -> FewShot.Trained {
        let base = try MLPShape.model(baseWeights)
        var g = Xoshiro256(seed: 0)
        let peft = try PeftModel(wrapping: base, config: config, using: &g)
        try peft.loadAdapterTensors(tensors)
        return (base, peft)
    }

    /// The per-layer allocations' recovery of the truth, averaged over layers: (cell accuracy, exact-row accuracy).
    func recovery(truth: [[Float]]) throws -> (cells: Float, rows: Float) {
        let (_, peft) = try copy()
        let rs = try TrainReport.allocations(peft).map { RoutingDiagnostics.recovery(learned: $0.matrix, truth: truth) }
        guard !rs.isEmpty else { return (0, 0) }
        return (rs.map(\.cellAccuracy).reduce(0, +) / Float(rs.count), rs.map(\.exactRowAccuracy).reduce(0, +) / Float(rs.count))
    }
}
