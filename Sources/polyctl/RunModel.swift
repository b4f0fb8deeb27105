import Foundation
import PolyPEFT

/// A trained run reopened from its folder: base model, adapter, task names and data.
struct RunModel {
    let spec: RunSpec
    /// The base model with the adapter in place: an `MLP` (numeric runs) or a BERT classifier (text runs).
    let model: Module
    let peft: PeftModel
    let dir: URL
    /// A text run's classifier and tokenizer.
    let text: TextBase?

    /// Opens the run in `path`. Adapter weights holding NaN or infinity are refused unless `allowNonFinite`, and
    /// then each such tensor is named in a warning on `console`'s standard error.
    static func open(_ path: String, allowNonFinite: Bool = false, console: Console? = nil) throws -> RunModel {
        let dir = URL(fileURLWithPath: path)
        let spec = try RunSpec.read(from: dir)
        let base: Module, text: TextBase?
        if let t = spec.text {
            text = try TextBase.load(TextBase.folder(of: t, runDir: dir), kind: t.kind, numLabels: t.outputCount, seed: spec.dataSeed &+ 3)
            base = text!.model
        } else {
            text = nil
            base = try MLPShape.model(try Safetensors.read(dir.appendingPathComponent(RunSpec.baseWeightsFileName)))
        }
        let peft = try PeftModel.load(from: dir, into: base, allowNonFinite: allowNonFinite)
        try spec.check(against: peft.config, in: dir)
        if allowNonFinite, let console {
            warnNonFinite(try peft.adapterTensors(), source: dir.appendingPathComponent(PeftAdapterFolder.weightsFileName).path, console)
        }
        return RunModel(spec: spec, model: base, peft: peft, dir: dir, text: text)
    }

    /// The base network of a numeric run; a text run is an error naming what `command` needs.
    func mlp(for command: String) throws -> MLP {
        guard let m = model as? MLP else {
            throw CLIError.runtime("\(dir.path) is a text run; '\(command)' takes a numeric run here")
        }
        return m
    }

    /// One warning per adapter tensor holding a NaN or infinity (loaded because the user allowed it).
    static func warnNonFinite(_ tensors: [String: Tensor], source: String, _ console: Console) {
        for (key, t) in tensors.sorted(by: { $0.key < $1.key }) {
            guard let note = t.nonFiniteNote() else { continue }
            console.error("warning: \(source): tensor '\(key)' \(note) (loaded because of --allow-non-finite)")
        }
    }

    /// The id of task `name`; unknown names list the known ones.
    func taskID(_ name: String) throws -> Int {
        guard let i = spec.taskNames.firstIndex(of: name) else {
            let known = namesPreview(spec.taskNames)
            throw CLIError.runtime("unknown task '\(name)' (this adapter knows: \(known)); '--unknown-task uniform' routes it uniformly")
        }
        return i
    }
}
