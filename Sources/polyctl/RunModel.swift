import Foundation
import PolyPEFT

/// A trained run reopened from its folder: base network, adapter, task names and data.
struct RunModel {
    let spec: RunSpec
    let model: MLP
    let peft: PeftModel
    let dir: URL

    static func open(_ path: String) throws -> RunModel {
        let dir = URL(fileURLWithPath: path)
        let spec = try RunSpec.read(from: dir)
        let base = try MLPShape.model(try Safetensors.read(dir.appendingPathComponent(RunSpec.baseWeightsFileName)))
        let peft = try PeftModel.load(from: dir, into: base)
        try spec.check(against: peft.config, in: dir)
        return RunModel(spec: spec, model: base, peft: peft, dir: dir)
    }

    /// The id of task `name`; unknown names list the known ones.
    func taskID(_ name: String) throws -> Int {
        guard let i = spec.taskNames.firstIndex(of: name) else {
            let known = spec.taskNames.prefix(8).joined(separator: ", ") + (spec.taskNames.count > 8 ? ", ..." : "")
            throw CLIError.runtime("unknown task '\(name)' (this adapter knows: \(known)); '--unknown-task uniform' routes it uniformly")
        }
        return i
    }
}
