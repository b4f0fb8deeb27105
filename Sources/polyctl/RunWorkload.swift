import Foundation
import PolyPEFT

/// What `polyctl train` trains, whichever kind of run it is: the base model with its adapter, the objective, the
/// test set's scores and the shared-LoRA baseline. `NumericWorkload` (an MLP on numeric tasks) and `TextWorkload`
/// (a BERT classifier on text) share the loop, checkpoints, signals and report of `TrainCommand`.
protocol RunWorkload {
    var peft: PeftModel { get }
    var objective: any Objective { get }
    var trainingSamples: Int { get }
    /// What the loss is, for progress lines: "MSE", "cross-entropy".
    var lossName: String { get }
    /// The true task x skill allocation, when the data is generated with one (numeric built-in data).
    var trueAllocation: [[Float]]? { get }
    /// Writes the base model into the run folder unless it is there (numeric runs; text runs save theirs before).
    func saveBase(in dir: URL) throws
    /// Scores on the test split.
    func evaluateTest() throws -> RunEvaluation
    /// A single LoRA shared by all tasks, of the skill inventory's size (rank skills x rank), trained with the same
    /// settings: its test scores and rank; nil when `shouldStop` interrupts it.
    func trainBaseline(shouldStop: () -> Bool) throws -> (RunEvaluation, rank: Int)?
}

/// Scores of a model on a data set: its loss, and accuracy for classifiers; per task by task id.
struct RunEvaluation {
    var loss: Float
    var accuracy: Float?
    var perTask: [Int: (loss: Float, accuracy: Float?, samples: Int)]

    /// The headline number: accuracy for classifiers, loss otherwise.
    var headline: Float { accuracy ?? loss }
}

/// An MLP on the built-in numeric tasks or a numeric data file.
struct NumericWorkload: RunWorkload {
    let spec: RunSpec
    let data: RunData
    let peft: PeftModel
    let objective: any Objective

    init(_ spec: RunSpec) throws {
        self.spec = spec
        data = try RunData.load(dataPath: spec.dataPath, seed: spec.dataSeed, hiddenDim: spec.hiddenDim, taskNames: spec.taskNames)
        let base = try MLPShape.model(data.baseWeights)
        var initRNG = Xoshiro256(seed: spec.dataSeed &+ 7)
        peft = try PeftModel(wrapping: base, config: spec.adapterConfig(), using: &initRNG)
        objective = RegressionObjective(model: base, data: data.train, validation: data.validation)
    }

    var trainingSamples: Int { data.train.count }
    var lossName: String { "MSE" }
    var trueAllocation: [[Float]]? { data.synthetic?.trueAllocation }

    func saveBase(in dir: URL) throws {
        let url = dir.appendingPathComponent(RunSpec.baseWeightsFileName)
        if !FileManager.default.fileExists(atPath: url.path) { try Safetensors.write(data.baseWeights, to: url) }
    }

    func evaluateTest() throws -> RunEvaluation { try Self.evaluate(peft.model as! MLP, data.test) }

    static func evaluate(_ model: any Layer, _ set: MultitaskDataset) throws -> RunEvaluation {
        let (loss, perTask) = try RegressionObjective.evaluate(model, set)
        let counts = set.indicesByTask.mapValues(\.count)
        var per: [Int: (loss: Float, accuracy: Float?, samples: Int)] = [:]
        for (t, l) in perTask { per[t] = (l, nil, counts[t] ?? 0) }
        return RunEvaluation(loss: loss, accuracy: nil, perTask: per)
    }

    func trainBaseline(shouldStop: () -> Bool) throws -> (RunEvaluation, rank: Int)? {
        let shared = spec.sharedBaseline
        guard let trained = try TrainedAdapter.train(shared.adapterConfig(), baseWeights: data.baseWeights, train: data.train,
                                                     test: data.test, training: spec.training, initSeed: spec.dataSeed &+ 11,
                                                     shouldStop: shouldStop) else { return nil }
        let (base, _) = try trained.copy()
        return (try Self.evaluate(base, data.test), shared.rank)
    }
}

/// A BERT classifier on the built-in text tasks or a JSONL text file.
struct TextWorkload: RunWorkload {
    let spec: RunSpec
    let text: TextRunSpec
    let base: TextBase
    let data: TextRunData
    let peft: PeftModel
    let classification: TextClassificationObjective

    /// Opens the run's base (the built-in one is pre-trained and saved in `dir` first, unless there) and data.
    init(_ spec: RunSpec, dir: URL) throws {
        guard let text = spec.text else { preconditionFailure("TextWorkload: not a text run") }
        self.spec = spec
        self.text = text
        if text.modelPath == nil { try TextBase.writeBuiltIn(in: dir, seed: spec.dataSeed, numLabels: text.outputCount) }
        base = try TextBase.load(TextBase.folder(of: text, runDir: dir), numLabels: text.outputCount, seed: spec.dataSeed &+ 3)
        data = try TextRunData.load(spec, text, tokenizer: base.tokenizer)
        var initRNG = Xoshiro256(seed: spec.dataSeed &+ 7)
        peft = try PeftModel(wrapping: base.classifier, config: spec.adapterConfig(), using: &initRNG)
        classification = try TextClassificationObjective(model: base.classifier, data: data.train, validation: data.validation,
                                                         padID: base.padID, heads: text.heads)
    }

    var objective: any Objective { classification }
    var trainingSamples: Int { data.train.count }
    var lossName: String { "cross-entropy" }
    var trueAllocation: [[Float]]? { nil }
    func saveBase(in dir: URL) throws {}

    func evaluateTest() throws -> RunEvaluation { try Self.evaluate(classification, data.test) }

    static func evaluate(_ objective: TextClassificationObjective, _ set: TextClassificationData) throws -> RunEvaluation {
        let e = try objective.evaluate(set)
        let counts = Dictionary(set.samples.map { ($0.taskID, 1) }, uniquingKeysWith: +)
        var per: [Int: (loss: Float, accuracy: Float?, samples: Int)] = [:]
        for (t, r) in e.perTask { per[t] = (r.loss, r.accuracy, counts[t] ?? 0) }
        return RunEvaluation(loss: e.loss, accuracy: e.accuracy, perTask: per)
    }

    func trainBaseline(shouldStop: () -> Bool) throws -> (RunEvaluation, rank: Int)? {
        let shared = spec.sharedBaseline
        let fresh = try TextBase.load(base.folder, numLabels: text.outputCount, seed: spec.dataSeed &+ 3)
        var g = Xoshiro256(seed: spec.dataSeed &+ 11)
        let peft = try PeftModel(wrapping: fresh.classifier, config: shared.adapterConfig(), using: &g)
        let objective = try TextClassificationObjective(model: fresh.classifier, data: data.train, padID: fresh.padID,
                                                        heads: text.heads)
        let trainer = try Trainer(objective: objective, parameters: peft.trainableParameters(), configuration: spec.training)
        try trainer.run(shouldStop: shouldStop)
        guard trainer.step >= spec.training.steps else { return nil }
        return (try Self.evaluate(objective, data.test), shared.rank)
    }
}

extension RunSpec {
    /// The shared-LoRA baseline of a routed run: one LoRA of rank skills x rank, the same size as the inventory.
    var sharedBaseline: RunSpec {
        var shared = self
        shared.method = .lora
        shared.rank = skills * rank
        return shared
    }

    /// Opens what this run trains.
    func workload(dir: URL) throws -> any RunWorkload {
        text == nil ? try NumericWorkload(self) : try TextWorkload(self, dir: dir)
    }
}
