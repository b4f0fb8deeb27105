import PolyPEFTCore

/// A training step met a NaN or infinite loss or gradient. The step was not applied: parameters, optimizer state
/// and the generator are as after the last good step, so that state can be saved as a checkpoint.
///
/// `description` is `"step <n>: <message>"` when the step is known (`Trainer`), else the message, e.g.
/// `step 12: the gradient of 'adapter/fc1.poly_lora_A' holds nan at flat index 3`.
public struct DivergenceError: PolyPEFTError, Equatable {
    /// The 1-based number of the step that diverged, when known.
    public let step: Int?
    /// What was not finite, naming the loss or the first parameter whose gradient holds a NaN or infinity.
    public let message: String

    public init(step: Int? = nil, _ message: String) {
        self.step = step
        self.message = message
    }

    public var description: String { step.map { "step \($0): \(message)" } ?? message }
}
