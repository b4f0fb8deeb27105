import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// One task's routed update written as a plain LoRA (`lora_A.weight: [rank, in]`, `lora_B.weight: [out, rank]`,
/// update `x A^T B^T * alpha / rank`), which PEFT's LoRA loads.
///
/// With the task's evaluation-mode routing weights `w: [S, K]`:
/// ```
/// parameters mixing: A_full = stack_s(sum_k w[s,k] A[s,k]) [in, r],  B_full = concat_s(sum_k w[s,k] B[s,k]) [r, out]
///                    lora_A = A_full^T [r, in], lora_B = B_full^T [out, r], rank = r,   alpha = 1      (alpha/rank = 1/r)
/// outputs mixing:    lora_A = [A_1 .. A_K]^T [K*r, in]   (A_k = stack_s A[s,k]; row k*r + j)
///                    lora_B[s*e + c, k*r + j] = w[s,k] B[s,k][j, c]   [out, K*r]   (split s scales output block s)
///                    rank = K*r, alpha = K                                                       (alpha/rank = 1/r)
/// ```
/// Both are exact: the LoRA's update equals the Poly layer's for that task (up to float rounding).
public struct TaskLoRA {
    public let a: Tensor        // [rank, in]
    public let b: Tensor        // [out, rank]
    public let rank: Int
    public let alpha: Float
    public var scaling: Float { alpha / Float(rank) }

    /// The dense update of the base weight: `scaling * B A`, `[out, in]`.
    public func deltaWeight() throws -> Tensor { try b.matmul(a) * scaling }
}

extension PolyLinear {
    /// Task `task`'s update as a plain LoRA (see `TaskLoRA`).
    public func taskLoRA(task: Int) throws -> TaskLoRA {
        guard task >= 0 && task < nTasks else { throw PolyError("\(path): task id \(task) is out of range 0..<\(nTasks)") }
        let ctx = Context.inference()
        let w = try router.weights(rowTasks: [task], ctx)                        // [1, S, K]
        let (left, right) = try factors(w, ctx)                                 // [1, in, R], [1, R, out]
        let rank = left.shape[2]
        return TaskLoRA(a: try left.value.selecting(axis: 0, index: 0).T.contiguous(),    // [R, in]
                        b: try right.value.selecting(axis: 0, index: 0).T.contiguous(),   // [out, R]
                        rank: rank, alpha: Float(rank) / Float(r))
    }
}

extension PeftModel {
    /// Task `task` collapsed into a PEFT LoRA adapter: its config (rank and alpha as in `TaskLoRA`, the adapted
    /// paths as `target_modules`, the same `modules_to_save`) and tensors under PEFT's keys.
    public func taskLoRAAdapter(task: Int) throws -> (config: LoraConfig, tensors: [String: Tensor]) {
        guard let poly = config as? PolyConfig else { throw PolyError("export: the adapter is not a Poly adapter") }
        let layers = polyLayers
        guard !layers.isEmpty else { throw PolyError("export: the model has no Poly layers") }
        var tensors: [String: Tensor] = [:]
        var rank: Int?, alpha: Float = 1
        for (path, layer) in layers {
            let lora = try layer.taskLoRA(task: task)
            if let rk = rank, rk != lora.rank {
                throw PolyError("export: layer \(path) has rank \(lora.rank), other layers \(rk); one LoRA config cannot hold both")
            }
            rank = lora.rank
            alpha = lora.alpha
            tensors[PeftModel.keyPrefix + path + ".lora_A.weight"] = lora.a
            tensors[PeftModel.keyPrefix + path + ".lora_B.weight"] = lora.b
        }
        for path in savedModules {
            for (name, p) in model.module(at: path)!.namedParameters() { tensors[PeftModel.keyPrefix + path + "." + name] = p.value }
        }
        var lc = LoraConfig(r: rank!, loraAlpha: Double(alpha), targetModules: .names(layers.map(\.path)))
        lc.modulesToSave = poly.modulesToSave
        lc.taskType = poly.taskType
        lc.baseModelNameOrPath = poly.baseModelNameOrPath
        lc.revision = poly.revision
        return (lc, tensors)
    }

    /// Writes task `task` as a PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`) into
    /// `directory`; PEFT's `PeftModel.from_pretrained(base, directory)` and `PeftModel.load` read it.
    @discardableResult
    public func exportTaskLoRA(task: Int, to directory: URL) throws -> URL {
        let (lc, tensors) = try taskLoRAAdapter(task: task)
        return try PeftAdapterFolder.write(config: lc.json, tensors: tensors, to: directory)
    }

    /// Writes the task called `name` in `tasks` as a PEFT LoRA adapter folder.
    @discardableResult
    public func exportTaskLoRA(task name: String, in tasks: TaskTable, to directory: URL) throws -> URL {
        guard tasks.count == taskCount else {
            throw PolyError("export: the task table names \(tasks.count) tasks, the adapter has \(taskCount)")
        }
        return try exportTaskLoRA(task: try tasks.id(of: name), to: directory)
    }

    /// Writes one LoRA adapter per task of `tasks` into `directory/<task name>/`. Returns the folders in task order.
    @discardableResult
    public func exportTaskLoRAs(_ tasks: TaskTable, to directory: URL) throws -> [URL] {
        let n = polyLayers.first?.layer.nTasks ?? 0
        guard tasks.count == n else {
            throw PolyError("export: the task table names \(tasks.count) tasks, the adapter has \(n)")
        }
        for name in tasks.names where name.contains("/") || name == "." || name == ".." || name.hasPrefix(".") {
            throw PolyError("export: task name '\(name)' cannot be used as a folder name")
        }
        return try tasks.names.enumerated().map { id, name in
            try exportTaskLoRA(task: id, to: directory.appendingPathComponent(name, isDirectory: true))
        }
    }
}
