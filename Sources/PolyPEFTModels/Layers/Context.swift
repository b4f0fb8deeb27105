import PolyPEFTCore
import PolyPEFTIO

/// Everything a forward pass needs besides its input, passed explicitly (no hidden state, no hooks).
///
/// - `mode`: training (dropout active, stochastic routers sample) or evaluation.
/// - `taskIDs`: one task index per sample (batch row), read by routed adapters.
/// - `rng`: the seeded generator for dropout and router sampling.
/// - `recordsGradients`: when false, parameters enter the computation as constants and nothing is recorded.
/// - `recorder`: optional sink for intermediates (routing weights, layer inputs/outputs) keyed by layer path.
/// - `injectedUniformDraws`: uniform draws a layer at a given path uses instead of drawing from `rng` (to replay
///   another implementation's randomness, e.g. PEFT's router noise in the golden tests; see `uniformDraws`).
/// - `adaptersEnabled`: false runs the base model alone.
public final class Context {
    public enum Mode: String, Sendable, Codable { case train, eval }

    public var mode: Mode
    public var taskIDs: [Int]?
    public var rng: Xoshiro256
    public var recordsGradients: Bool
    public var recorder: Recorder?
    /// Uniform draws in [0, 1) by layer path; a layer that draws through `uniformDraws(_:for:)` takes these instead.
    public var injectedUniformDraws: [String: Tensor] = [:]
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

    /// Uniform draws in [0, 1) of `shape` for the layer at `path`: `injectedUniformDraws[path]` when set (it must have
    /// exactly that shape), else fresh draws from `rng`.
    public func uniformDraws(_ shape: [Int], for path: String) throws -> Tensor {
        guard let injected = injectedUniformDraws[path] else { return Tensor.uniform(shape, using: &rng) }
        guard injected.shape == shape else {
            throw TensorError("uniform draws", "'\(path)' draws \(fmt(shape)), the injected draws are \(fmt(injected.shape))")
        }
        return injected
    }
}

/// Collects named intermediates during a forward (`layer.fc1.mixing_weights`, ...).
public final class Recorder {
    public private(set) var values: [String: Tensor] = [:]
    public init() {}
    public func record(_ key: String, _ value: Tensor) { values[key] = value }
    /// Adds `column` `[B]` as the last column of the value at `key` (`[B]`, then `[B, 2]`, ...), as numpy's
    /// `column_stack` gathers the adapters library's gating scores of several modules at one layer and location.
    /// A column whose length differs from the rows already there replaces the value.
    public func append(_ key: String, column: Tensor) {
        let c = column.contiguous()
        guard let old = values[key]?.contiguous(), old.shape[0] == c.count, old.rank <= 2, c.rank == 1 else {
            values[key] = c
            return
        }
        let n = old.rank == 1 ? 1 : old.shape[1]
        var out = [Float](); out.reserveCapacity(old.count + c.count)
        let a = old.scalars, b = c.scalars
        for row in 0..<c.count { out += a[(row * n)..<((row + 1) * n)]; out.append(b[row]) }
        values[key] = Tensor(out, shape: [c.count, n + 1])
    }
    public subscript(_ key: String) -> Tensor? { values[key] }
}
