import Foundation
import PolyPEFT

/// The files of a run folder:
///
/// ```
/// DIR/adapter_config.json, adapter_model.safetensors   the adapter, as PEFT saves it (PeftModel.from_pretrained)
/// DIR/polypeft_run.json                                what eval / infer / inspect / --resume rebuild from
/// DIR/base_model.safetensors                           the frozen base network
/// DIR/checkpoint/                                      adapter + trainer_state.json + optimizer.safetensors,
///                                                      replaced as a whole (AtomicDirectory)
/// DIR/allocation.svg, DIR/loss.svg                     pictures, at the end of training (allocation: Poly / MHR)
/// ```
enum RunCheckpoint {
    static let directoryName = "checkpoint"
    static let stateFileName = "trainer_state.json"
    static let optimizerFileName = "optimizer.safetensors"

    /// Writes the adapter (top level and in the checkpoint) and the resume state.
    static func save(to dir: URL, spec: RunSpec, peft: PeftModel, trainer: Trainer, baseWeights: [String: Tensor]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try spec.write(to: dir)
        let baseURL = dir.appendingPathComponent(RunSpec.baseWeightsFileName)
        if !FileManager.default.fileExists(atPath: baseURL.path) { try Safetensors.write(baseWeights, to: baseURL) }
        let adapter = try Safetensors.encode(peft.adapterTensors(), metadata: ["format": "pt"])
        let config = Data(peft.config.json.pythonStyleString(indent: 2, sortKeys: true).utf8)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try AtomicDirectory.replace(dir.appendingPathComponent(directoryName), with: [
            PeftAdapterFolder.weightsFileName: adapter,
            PeftAdapterFolder.configFileName: config,
            stateFileName: try enc.encode(trainer.state),
            optimizerFileName: try Safetensors.encode(trainer.optimizerTensors()),
        ])
        try AtomicFile.write(adapter, to: dir.appendingPathComponent(PeftAdapterFolder.weightsFileName))
        try AtomicFile.write(config, to: dir.appendingPathComponent(PeftAdapterFolder.configFileName))
    }

    /// Restores adapter tensors and trainer state from `dir/checkpoint`.
    static func restore(from dir: URL, peft: PeftModel, trainer: Trainer) throws {
        guard let ck = AtomicDirectory.resolve(dir.appendingPathComponent(directoryName)) else {
            throw CLIError.runtime("\(dir.path) has no checkpoint to resume from")
        }
        let tensors = try Safetensors.read(ck.appendingPathComponent(PeftAdapterFolder.weightsFileName))
        try peft.loadAdapterTensors(tensors, source: ck.appendingPathComponent(PeftAdapterFolder.weightsFileName).path)
        let stateURL = ck.appendingPathComponent(stateFileName)
        let state: Trainer.State
        do { state = try JSONDecoder().decode(Trainer.State.self, from: try Data(contentsOf: stateURL)) } catch {
            throw CLIError.runtime("\(stateURL.path): cannot read the trainer state (\(error))")
        }
        try trainer.restore(state, optimizerTensors: try Safetensors.read(ck.appendingPathComponent(optimizerFileName)))
    }
}

/// Turns Ctrl-C into a request to stop, checked by the training loop between steps.
final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    private var source: DispatchSourceSignal?

    var isRaised: Bool { lock.lock(); defer { lock.unlock() }; return raised }

    func raise() { lock.lock(); raised = true; lock.unlock() }

    /// Lowers the flag (a `--stop-after` that coincided with the end of training is not an interrupt of what follows).
    func lower() { lock.lock(); raised = false; lock.unlock() }

    /// Catches SIGINT until `stop()`.
    func install() {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler { [weak self] in self?.raise() }
        s.resume()
        source = s
    }

    func stop() {
        source?.cancel()
        source = nil
        signal(SIGINT, SIG_DFL)
    }
}
