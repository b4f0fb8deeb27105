/// Everything a forward pass needs besides its input, passed explicitly (no hidden state, no hooks).
///
/// - `mode`: training (dropout active, Poly routers sample relaxed Bernoulli) or evaluation.
/// - `taskIDs`: one task index per sample (batch row), read by routed adapters.
/// - `rng`: the seeded generator for dropout and router sampling.
/// - `recordsGradients`: when false, parameters enter the computation as constants and nothing is recorded.
/// - `recorder`: optional sink for intermediates (routing weights, layer inputs/outputs) keyed by layer path.
/// - `injectedUniformNoise`: optional per-layer-path noise replacing the router's uniform draws (golden tests).
/// - `adaptersEnabled`: false runs the base model alone.
public final class Context {
    public enum Mode: String, Sendable, Codable { case train, eval }

    public var mode: Mode
    public var taskIDs: [Int]?
    public var rng: Xoshiro256
    public var recordsGradients: Bool
    public var recorder: Recorder?
    public var injectedUniformNoise: [String: Tensor] = [:]
    /// When false, adapter layers return their base layer's output (PEFT's `disable_adapter()`).
    public var adaptersEnabled = true

    public init(mode: Mode = .eval, taskIDs: [Int]? = nil, rng: Xoshiro256 = Xoshiro256(seed: 0),
                recordsGradients: Bool = true, recorder: Recorder? = nil) {
        self.mode = mode
        self.taskIDs = taskIDs
        self.rng = rng
        self.recordsGradients = recordsGradients
        self.recorder = recorder
    }

    /// An inference context: evaluation mode, nothing recorded.
    public static func inference(taskIDs: [Int]? = nil) -> Context {
        Context(mode: .eval, taskIDs: taskIDs, recordsGradients: false)
    }

    /// A parameter as an input of this forward: recorded when this context records gradients.
    public subscript(_ p: Parameter) -> Variable { p.variable(recording: recordsGradients) }

    public var isTraining: Bool { mode == .train }
}

/// Collects named intermediates during a forward (`layer.fc1.mixing_weights`, ...).
public final class Recorder {
    public private(set) var values: [String: Tensor] = [:]
    public init() {}
    public func record(_ key: String, _ value: Tensor) { values[key] = value }
    public subscript(_ key: String) -> Tensor? { values[key] }
}
