import Foundation
import PolyPEFT

/// The files of a run folder:
///
/// ```
/// DIR/adapter_config.json, adapter_model.safetensors   the adapter, as PEFT saves it (PeftModel.from_pretrained)
/// DIR/polypeft_run.json                                what eval / infer / inspect / --resume rebuild from
/// DIR/base_model.safetensors                           the frozen base network (numeric runs)
/// DIR/base_model/                                      the built-in tiny BERT of a text run, a BERT folder
///                                                      (config.json, model.safetensors, tokenizer.json)
/// DIR/checkpoint/                                      adapter + trainer_state.json + optimizer.safetensors,
///                                                      replaced as a whole (AtomicDirectory), periodically
///                                                      (CheckpointSchedule), on SIGINT / SIGTERM and at the end
/// DIR/.polypeft.lock                                   held by the one `train` writing the folder (RunFolder)
/// DIR/allocation.svg, DIR/loss.svg                     pictures, at the end of training (allocation: Poly / MHR)
/// ```
enum RunCheckpoint {
    static let directoryName = "checkpoint"
    static let stateFileName = "trainer_state.json"
    static let optimizerFileName = "optimizer.safetensors"
    /// The trained parameters, written only for methods whose adapter file holds a function of them (P-tuning).
    static let parametersFileName = "adapter_parameters.safetensors"

    /// Writes what does not change during a run: its settings, and the base model unless already there (a resumed
    /// run keeps its own; a new run starts in a folder `RunFolder` emptied of any old run).
    static func begin(_ dir: URL, spec: RunSpec, workload: any RunWorkload) throws {
        try spec.write(to: dir)
        try workload.saveBase(in: dir)
    }

    /// Writes the adapter and the resume state as one directory, `DIR/checkpoint` (`AtomicDirectory`: a kill at
    /// any moment leaves the previous checkpoint or this one), then the adapter at the top level for `eval`.
    static func save(to dir: URL, peft: PeftModel, trainer: Trainer) throws {
        let tensors = try peft.adapterTensors()
        let adapter = try Safetensors.encode(tensors, metadata: ["format": "pt"])
        // Written as PEFT's save_pretrained writes it (inference_mode true): a method whose file holds a function of
        // its parameters (P-tuning's MLP output) then loads that table directly for eval and infer.
        var saved = peft.config
        saved.inferenceMode = true
        let config = Data(saved.json.pythonStyleString(indent: 2, sortKeys: true).utf8)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var files = [
            PeftAdapterFolder.weightsFileName: adapter,
            PeftAdapterFolder.configFileName: config,
            stateFileName: try enc.encode(trainer.state),
            optimizerFileName: try Safetensors.encode(trainer.optimizerTensors()),
        ]
        if peft.savesDerivedTensors(tensors) { files[parametersFileName] = try Safetensors.encode(peft.adapterParameterTensors()) }
        try AtomicDirectory.replace(dir.appendingPathComponent(directoryName), with: files)
        try AtomicFile.write(adapter, to: dir.appendingPathComponent(PeftAdapterFolder.weightsFileName))
        try AtomicFile.write(config, to: dir.appendingPathComponent(PeftAdapterFolder.configFileName))
    }

    /// Restores adapter tensors and trainer state from `dir/checkpoint`; false when the run was stopped before its
    /// first checkpoint (it then starts again from step 0, which its seed makes the same run).
    /// NaN or infinite weights are refused unless `allowNonFinite` (then named in warnings on `console`).
    static func restore(from dir: URL, peft: PeftModel, trainer: Trainer, allowNonFinite: Bool, console: Console) throws -> Bool {
        guard let ck = AtomicDirectory.resolve(dir.appendingPathComponent(directoryName)) else { return false }
        // The trained parameters themselves when the adapter file holds a function of them, else the adapter file.
        let parameters = ck.appendingPathComponent(parametersFileName)
        if peft.savesDerivedTensors(try peft.adapterTensors()) {
            guard FileManager.default.fileExists(atPath: parameters.path) else {
                throw CLIError.runtime("\(ck.path): \(parametersFileName) is missing (this method's adapter file cannot resume training)")
            }
            try peft.loadAdapterParameters(try Safetensors.read(parameters), source: parameters.path, allowNonFinite: allowNonFinite)
            if allowNonFinite { RunModel.warnNonFinite(peft.adapterParameterTensors(), source: parameters.path, console) }
        } else {
            let weights = ck.appendingPathComponent(PeftAdapterFolder.weightsFileName)
            try peft.loadAdapterTensors(try Safetensors.read(weights), source: weights.path, allowNonFinite: allowNonFinite)
            if allowNonFinite { RunModel.warnNonFinite(try peft.adapterTensors(), source: weights.path, console) }
        }
        let stateURL = ck.appendingPathComponent(stateFileName)
        let state: Trainer.State = try RunSpec.decodeStrictly(stateURL, what: "the trainer state")
        let optimizer = try Safetensors.read(ck.appendingPathComponent(optimizerFileName))
        do { try trainer.restore(state, optimizerTensors: optimizer) } catch let e as PolyPEFTError {
            throw CLIError.runtime("\(stateURL.path): \(e.message)")
        }
        return true
    }
}

/// When to write a periodic checkpoint: every `steps` steps or `seconds` after the last one, whichever comes
/// first (0 turns either off). Checkpoints do not change the run: a run resumed from any of them ends bit for bit
/// like an uninterrupted one, so the clock may decide when they are taken.
struct CheckpointSchedule {
    var steps: Int
    var seconds: Double
    private var lastStep: Int
    private var lastTime: Double

    init(steps: Int, seconds: Double, startStep: Int, now: Double) {
        self.steps = steps
        self.seconds = seconds
        lastStep = startStep
        lastTime = now
    }

    /// True when a checkpoint is due after `step`; the caller then saves and calls `saved(step:now:)`.
    func isDue(step: Int, now: Double) -> Bool {
        (steps > 0 && step - lastStep >= steps) || (seconds > 0 && now - lastTime >= seconds)
    }

    mutating func saved(step: Int, now: Double) {
        lastStep = step
        lastTime = now
    }

    /// Seconds on a monotonic clock.
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// The signal the handler recorded (0: none). Written only by `recordSignal`, an async-signal-safe store; read
/// between training steps.
nonisolated(unsafe) private var receivedSignal: sig_atomic_t = 0

/// Turns SIGINT (Ctrl-C) and SIGTERM into a request to stop, checked by the training loop between steps; the run
/// is then saved and the command exits 128 + the signal (130, 143), as shells report it. A plain C handler records
/// the first signal, so none is lost between installing and the first check; `stop()` puts the previous handlers
/// back.
final class InterruptFlag {
    static let signals: [Int32] = [SIGINT, SIGTERM]
    private var previous: [(Int32, sighandler_t?)] = []

    /// True once SIGINT or SIGTERM arrived after `install()`.
    var isRaised: Bool { receivedSignal != 0 }

    /// The first signal that arrived.
    var signal: Int32? { receivedSignal == 0 ? nil : Int32(receivedSignal) }

    /// Catches the signals until `stop()`.
    func install() {
        receivedSignal = 0
        for sig in Self.signals {
            previous.append((sig, Foundation.signal(sig) { sig in if receivedSignal == 0 { receivedSignal = sig_atomic_t(sig) } }))
        }
    }

    func stop() {
        for (sig, handler) in previous { Foundation.signal(sig, handler) }
        previous = []
    }
}
