import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Few-shot adaptation to an unseen task, the evaluation of the Polytropon and MHR papers:
///
/// - `full`: a new router row and all skills train (Poly / MHR);
/// - `routingOnly` (Poly-z / MHR-z): only the new task's routing logits train;
/// - `averagedSkills` (Poly-mu / MHR-mu): routing is dropped, the skills are averaged into one LoRA per layer, which
///   trains;
/// - `sharedLoRA`: a LoRA trained on all training tasks keeps training on the new task;
/// - `privateLoRA`: a fresh LoRA trains on the new task alone.
///
/// For the two LoRA methods the caller passes the starting point (the shared LoRA, or a freshly initialised one).
///
/// Each adaptation starts from a fresh copy of the trained model (built by the caller's closure), trains full-batch
/// on the `k` examples with Adam for a fixed number of steps in training mode, and reports the mean squared error on
/// the task's test samples.
public enum FewShotMethod: String, Sendable, CaseIterable, Codable {
    case full
    case routingOnly = "z"
    case averagedSkills = "mu"
    case sharedLoRA = "shared-lora"
    case privateLoRA = "private-lora"
}

public struct FewShotSettings: Sendable, Equatable {
    public var steps = 150
    /// Learning rate of skills / LoRA factors.
    public var learningRate: Float = 1e-2
    /// Learning rate of routing logits.
    public var routerLearningRate: Float = 1e-1
    public var seed: UInt64 = 0
    public init() {}
}

public enum FewShot {
    /// A trained model ready to adapt: the layer to run and its adapters.
    public typealias Trained = (model: any Layer, peft: PeftModel)

    /// Adapts `trained` to one new task with `method` on `train` (every sample of the new task; task ids are ignored
    /// and replaced), and returns (test MSE, number of trainable scalars).
    public static func adapt(_ method: FewShotMethod, trained: Trained, train: MultitaskDataset, test: MultitaskDataset,
                             settings: FewShotSettings = FewShotSettings()) throws -> (mse: Float, trainable: Int) {
        var rng = Xoshiro256(seed: settings.seed &+ 0xF5)
        let peft = trained.peft
        var taskID = 0
        let groups: [ParameterGroup]
        switch method {
        case .full, .routingOnly, .averagedSkills:
            guard peft.config is PolyConfig else { throw PolyError("few-shot \(method.rawValue): needs a Poly adapter") }
            if method != .averagedSkills { taskID = try peft.addTasks(1, initialization: .nearUniform, using: &rng).lowerBound }
            let mode: NewTaskMode = method == .full ? .full : method == .routingOnly ? .routingOnly : .averagedSkills
            groups = try peft.newTaskTraining(mode, routerLearningRate: settings.routerLearningRate,
                                              skillLearningRate: settings.learningRate, using: &rng).groups
        case .sharedLoRA, .privateLoRA:
            // The starting point differs (trained on all tasks, or fresh): the caller builds it.
            guard peft.config is LoraConfig else { throw ConfigError("few-shot \(method.rawValue): needs a LoRA adapter") }
            groups = [ParameterGroup(name: "lora", parameters: peft.trainableAdapterParameters().map { ($0.key, $0.parameter) },
                                     learningRate: settings.learningRate)]
        }
        let trainData = try train.relabeled(taskID: taskID), testData = try test.relabeled(taskID: taskID)
        let optimizer = Adam(groups)
        let objective = RegressionObjective(model: trained.model, data: trainData)
        let all = Array(0..<trainData.count)
        let schedule = LRSchedule.cosine(warmupSteps: 0, totalSteps: settings.steps)
        for step in 0..<settings.steps {
            try optimizer.trainingStep(rng: &rng, lrScale: schedule.multiplier(step: step)) { try objective.loss(batch: all, $0) }
        }
        let trainable = groups.reduce(0) { $0 + $1.parameters.reduce(0) { $0 + $1.parameter.count } }
        return (try RegressionObjective.evaluate(trained.model, testData).loss, trainable)
    }
}

extension MultitaskDataset {
    /// The same samples, all labelled with task `taskID` (named `"new"` ... so the name table covers the id).
    func relabeled(taskID: Int) throws -> MultitaskDataset {
        try MultitaskDataset(inputs: inputs, targets: targets, taskIDs: [Int](repeating: taskID, count: count),
                             taskNames: (0...taskID).map { "task\($0)" })
    }
}
