import Foundation
import PolyPEFT

/// What `polyctl train` trains, whichever kind of run it is: the base model with its adapter, the objective, the
/// test set's scores and the shared-LoRA baseline. `NumericWorkload` (an MLP on numeric tasks), `TextClassificationWorkload`
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

/// Scores of a model on a data set: its loss, and accuracy for classifiers (exact match for generation); per task
/// by task id.
struct RunEvaluation {
    var loss: Float
    var accuracy: Float?
    var perTask: [Int: (loss: Float, accuracy: Float?, samples: Int)]
    /// What `accuracy` measures, as tables name it.
    var accuracyName = "accuracy"

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
        peft = try spec.attachAdapter(to: base)
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
struct TextClassificationWorkload: RunWorkload {
    let spec: RunSpec
    let text: TextRunSpec
    let base: TextBase
    let data: TextRunData
    let peft: PeftModel
    let classification: TextClassificationObjective

    /// Opens the run's base (the built-in one is pre-trained and saved in `dir` first, unless there) and data.
    init(_ spec: RunSpec, dir: URL) throws {
        guard let text = spec.text else { preconditionFailure("TextClassificationWorkload: not a text run") }
        self.spec = spec
        self.text = text
        base = try TextBase.openForTraining(text, dir: dir, seed: spec.dataSeed)
        data = try TextRunData.load(spec, text, tokenizer: base.tokenizer)
        peft = try spec.attachAdapter(to: base.model)
        classification = try TextClassificationObjective(model: try base.classifier, data: data.train, validation: data.validation,
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
        let fresh = try TextBase.load(base.folder, kind: .classification, numLabels: text.outputCount, seed: spec.dataSeed &+ 3)
        let objective = try TextClassificationObjective(model: try fresh.classifier, data: data.train, padID: fresh.padID,
                                                        heads: text.heads)
        guard try shared.trainBaseline(on: fresh.model, objective, shouldStop: shouldStop) else { return nil }
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

    /// The run's adapter on `model`, initialised from the run's seed.
    func attachAdapter(to model: Module) throws -> PeftModel {
        var initRNG = Xoshiro256(seed: dataSeed &+ 7)
        return try PeftModel(wrapping: model, config: adapterConfig(), using: &initRNG)
    }

    /// Trains this run's adapter (the shared baseline's spec) on a fresh `model` with `objective`; false when
    /// `shouldStop` interrupted it.
    func trainBaseline(on model: Module, _ objective: any Objective, shouldStop: () -> Bool) throws -> Bool {
        var g = Xoshiro256(seed: dataSeed &+ 11)
        let peft = try PeftModel(wrapping: model, config: adapterConfig(), using: &g)
        let trainer = try Trainer(objective: objective, parameters: peft.trainableParameters(), configuration: training)
        try trainer.run(shouldStop: shouldStop)
        return trainer.step >= training.steps
    }

    /// Opens what this run trains.
    func workload(dir: URL) throws -> any RunWorkload {
        switch text?.kind {
        case nil: try NumericWorkload(self)
        case .classification?: try TextClassificationWorkload(self, dir: dir)
        case .generation?: try TextToTextWorkload(self, dir: dir)
        }
    }
}

/// A T5 on the built-in text-to-text tasks or a JSONL file of task / source / target; scored by exact match.
struct TextToTextWorkload: RunWorkload {
    let spec: RunSpec
    let text: TextRunSpec
    let base: TextBase
    let data: TextToTextRunData
    let peft: PeftModel
    let generation: TextToTextObjective

    init(_ spec: RunSpec, dir: URL) throws {
        guard let text = spec.text else { preconditionFailure("TextToTextWorkload: not a text run") }
        self.spec = spec
        self.text = text
        base = try TextBase.openForTraining(text, dir: dir, seed: spec.dataSeed)
        data = try TextToTextRunData.load(spec, text, tokenizer: base.tokenizer)
        peft = try spec.attachAdapter(to: base.model)
        generation = TextToTextObjective(model: try base.generator, data: data.train, validation: data.validation)
    }

    var objective: any Objective { generation }
    var trainingSamples: Int { data.train.count }
    var lossName: String { "cross-entropy" }
    var trueAllocation: [[Float]]? { nil }
    func saveBase(in dir: URL) throws {}

    func evaluateTest() throws -> RunEvaluation { try Self.evaluate(generation, data.test) }

    static func evaluate(_ objective: TextToTextObjective, _ set: TextToTextData) throws -> RunEvaluation {
        let e = try objective.evaluate(set)
        let counts = Dictionary(set.samples.map { ($0.taskID, 1) }, uniquingKeysWith: +)
        var per: [Int: (loss: Float, accuracy: Float?, samples: Int)] = [:]
        for (t, r) in e.perTask { per[t] = (r.loss, r.exactMatch, counts[t] ?? 0) }
        return RunEvaluation(loss: e.loss, accuracy: e.exactMatch, perTask: per, accuracyName: "exact match")
    }

    func trainBaseline(shouldStop: () -> Bool) throws -> (RunEvaluation, rank: Int)? {
        let shared = spec.sharedBaseline
        let fresh = try TextBase.load(base.folder, kind: .generation, numLabels: nil, seed: 0)
        let objective = TextToTextObjective(model: try fresh.generator, data: data.train)
        guard try shared.trainBaseline(on: fresh.model, objective, shouldStop: shouldStop) else { return nil }
        return (try Self.evaluate(objective, data.test), shared.rank)
    }
}

extension TextBase {
    /// The base a new or resumed run trains: the built-in one is pre-trained and saved in `dir` first, unless there.
    static func openForTraining(_ text: TextRunSpec, dir: URL, seed: UInt64) throws -> TextBase {
        if text.modelPath == nil { try writeBuiltIn(text.kind, in: dir, seed: seed, numLabels: text.outputCount) }
        return try load(folder(of: text, runDir: dir), kind: text.kind, numLabels: text.kind == .classification ? text.outputCount : nil,
                        seed: seed &+ 3)
    }
}
