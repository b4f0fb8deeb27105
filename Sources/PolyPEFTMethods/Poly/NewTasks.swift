import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Adapting a trained Poly/MHR model to tasks it has not seen (Ponti et al. 2022 section 5; Caccia et al. 2023
/// section 4), with a few examples each.
///
/// New router rows are added to every router (`addTasks`); they live in a separate parameter
/// (`poly_router.new_module_logits`, `[n_new, S*K]`) so that they can train while the old rows stay frozen, and are
/// folded into `module_logits` on save (`adapterTensors()`) or by `commitNewTasks()`. Three ways to fine-tune:
/// ```
/// full          new router rows + every skill (poly_lora_A, poly_lora_B) train
/// routingOnly   Poly-z / MHR-z: only the new rows train: layers * n_new * S * K parameters
/// averagedSkills Poly-mu / MHR-mu: routing dropped; each layer becomes ONE plain LoRA with the skill averages
///               A_mu[s] = mean_k A[s,k],  B_mu[s] = mean_k B[s,k]
///               lora_A = stack_s(A_mu[s])^T [r, in],  lora_B = concat_s(B_mu[s])^T [out, r],  lora_alpha = 1
///               (= a Poly layer with one skill; in parameter mixing it is also uniform routing), then that LoRA trains
/// ```
/// `averagedSkills` returns a new `PeftModel` (a PEFT LoRA adapter, saved as such) built on the same model tree: the
/// Poly layers are taken out of the tree, so the original `PeftModel` must not be used afterwards.
public enum NewTaskMode: String, Sendable, CaseIterable {
    case full
    case routingOnly
    case averagedSkills
}

/// How new router rows start.
public enum NewTaskInitialization: Sendable {
    /// PEFT's `U(-1e-3, 1e-3)`: near-uniform routing, with symmetry broken.
    case nearUniform
    /// Zeros: exactly uniform routing (w = 1/K) in evaluation.
    case uniform
}

/// What to train for new tasks: the model (self, or the LoRA model for `averagedSkills`), named parameter groups
/// ready for `Adam`/`SGD`, and the `parameterSummary()` line of the set-up.
public struct NewTaskTraining {
    public let mode: NewTaskMode
    public let model: PeftModel
    public let groups: [ParameterGroup]
    /// Number of trainable scalars (each shared parameter once).
    public let trainableCount: Int
    public var summary: String { model.parameterSummary() }
}

extension PeftModel {
    /// Distinct routers of the Poly layers (shared routers once), in layer order.
    var distinctRouters: [(path: String, router: PolyRouter)] {
        polyLayers.uniqueObjects { $0.layer.router }.map { ($0.path, $0.layer.router) }
    }

    /// Number of tasks added and not yet committed.
    public var pendingTaskCount: Int { polyLayers.first?.layer.router.newLogits?.value.shape[0] ?? 0 }

    /// Adds `count` tasks to every router; returns their ids (`n_tasks ..< n_tasks + count`). The config's `n_tasks`
    /// grows accordingly.
    @discardableResult
    public func addTasks(_ count: Int, initialization: NewTaskInitialization = .nearUniform,
                         using rng: inout some RandomNumberGenerator) throws -> Range<Int> {
        guard var poly = config as? PolyConfig else { throw PolyError("addTasks: the adapter is not a Poly adapter") }
        guard count >= 1 else { throw PolyError("addTasks: count must be at least 1, got \(count)") }
        if let m = mergedTask { throw PolyError("addTasks: task \(m) is merged into the base weights; unmerge first") }
        let first = poly.nTasks
        for (_, router) in distinctRouters {
            let width = router.nSplits * router.nSkills
            let rows: Tensor                                                                 // [count, S*K]
            switch initialization {
            case .nearUniform: rows = Tensor.uniform([count, width], low: -1e-3, high: 1e-3, using: &rng)
            case .uniform: rows = Tensor.zeros([count, width])
            }
            if let old = router.newLogits {
                old.value = try Tensor.concatenate([old.value, rows], axis: 0)
            } else {
                router.newLogits = Parameter(rows)
            }
        }
        poly.nTasks += count
        config = poly
        return first..<(first + count)
    }

    /// Adds tasks called `names` to `tasks` and to every router; returns their ids. The table must describe this
    /// adapter's current tasks.
    @discardableResult
    public func addTasks(named names: [String], to tasks: inout TaskTable, initialization: NewTaskInitialization = .nearUniform,
                         using rng: inout some RandomNumberGenerator) throws -> [Int] {
        guard let poly = config as? PolyConfig else { throw PolyError("addTasks: the adapter is not a Poly adapter") }
        guard tasks.count == poly.nTasks else {
            throw PolyError("addTasks: the task table names \(tasks.count) tasks, the adapter has \(poly.nTasks)")
        }
        var updated = tasks
        for n in names { try updated.append(n) }          // validates names before touching the model
        let ids = try addTasks(names.count, initialization: initialization, using: &rng)
        tasks = updated
        return Array(ids)
    }

    /// Folds pending rows into `module_logits` (the same `Parameter`, now `[n_tasks, S*K]`).
    public func commitNewTasks() throws {
        for (_, router) in distinctRouters {
            guard let extra = router.newLogits else { continue }
            router.moduleLogits.value = try Tensor.concatenate([router.moduleLogits.value, extra.value], axis: 0)
            router.newLogits = nil
        }
    }

    /// Sets up fine-tuning on new tasks in `mode` (see `NewTaskMode`): freezes everything else, and returns the
    /// trainable parameters as groups `router` (new rows, `routerLearningRate`) and `skills` (skill factors or the
    /// averaged LoRA, `skillLearningRate`). `full` and `routingOnly` need `addTasks` first.
    public func newTaskTraining(_ mode: NewTaskMode, routerLearningRate: Float = 1e-1, skillLearningRate: Float = 1e-3,
                                using rng: inout some RandomNumberGenerator) throws -> NewTaskTraining {
        guard config is PolyConfig else { throw PolyError("newTaskTraining: the adapter is not a Poly adapter") }
        if let m = mergedTask { throw PolyError("newTaskTraining: task \(m) is merged into the base weights; unmerge first") }
        if mode == .averagedSkills {
            let lora = try averagedSkillsLoRA(using: &rng)
            let params = lora.adapterParameters().filter { $0.parameter.requiresGrad }.map { (name: $0.key, parameter: $0.parameter) }
            return NewTaskTraining(mode: mode, model: lora,
                                   groups: [ParameterGroup(name: "skills", parameters: params, learningRate: skillLearningRate)],
                                   trainableCount: params.reduce(0) { $0 + $1.parameter.count })
        }
        guard pendingTaskCount > 0 else {
            throw PolyError("newTaskTraining(\(mode.rawValue)): no new tasks; call addTasks first")
        }
        model.freeze()
        var seen = Set<ObjectIdentifier>()
        var router: [(name: String, parameter: Parameter)] = [], skills: [(name: String, parameter: Parameter)] = []
        for (path, layer) in polyLayers {
            let prefix = PeftModel.keyPrefix + path + "."
            if let extra = layer.router.newLogits, seen.insert(ObjectIdentifier(extra)).inserted {
                extra.requiresGrad = true
                router.append((prefix + "poly_router.new_module_logits", extra))
            }
            if mode == .full {
                for (name, p) in [("poly_lora_A", layer.loraA), ("poly_lora_B", layer.loraB)] {
                    p.requiresGrad = true
                    skills.append((prefix + name, p))
                }
            }
        }
        var groups = [ParameterGroup(name: "router", parameters: router, learningRate: routerLearningRate)]
        if !skills.isEmpty { groups.append(ParameterGroup(name: "skills", parameters: skills, learningRate: skillLearningRate)) }
        let count = (router + skills).reduce(0) { $0 + $1.parameter.count }
        return NewTaskTraining(mode: mode, model: self, groups: groups, trainableCount: count)
    }

    /// MHR-mu / Poly-mu: replaces every Poly layer of the tree by a plain LoRA with the skill averages (see
    /// `NewTaskMode.averagedSkills`) and returns the LoRA-wrapped model. Its forward equals the Poly layers' with
    /// averaged factors for any task. The original `PeftModel` must not be used afterwards.
    public func averagedSkillsLoRA(using rng: inout some RandomNumberGenerator) throws -> PeftModel {
        guard let poly = config as? PolyConfig else { throw PolyError("averagedSkillsLoRA: the adapter is not a Poly adapter") }
        if let m = mergedTask { throw PolyError("averagedSkillsLoRA: task \(m) is merged into the base weights; unmerge first") }
        var factors: [String: (a: Tensor, b: Tensor)] = [:]
        let layers = polyLayers
        for (path, layer) in layers {
            let r = layer.r
            let inF = layer.baseLayer.inFeatures, outF = layer.baseLayer.outFeatures
            let aMu = try layer.loraA.value.mean(axes: [1]).reshaped([inF, r])                        // [S, d, r] -> [in, r]
            let bMu = try layer.loraB.value.mean(axes: [1]).permuted([1, 0, 2]).reshaped([r, outF])   // [S, r, e] -> [r, out]
            factors[path] = (aMu.T.contiguous(), bMu.T.contiguous())                                   // [r, in], [out, r]
        }
        for (path, layer) in layers { try model.replace(path: path, with: layer.baseLayer) }
        var lc = LoraConfig(r: poly.r, loraAlpha: 1, targetModules: .names(layers.map(\.path)))
        lc.modulesToSave = poly.modulesToSave
        lc.taskType = poly.taskType
        lc.baseModelNameOrPath = poly.baseModelNameOrPath
        lc.revision = poly.revision
        let lora = try PeftModel(wrapping: model, config: lc, using: &rng)
        for (path, layer) in lora.adapters {
            guard let l = layer as? LoRALinear, let f = factors[path] else { continue }
            l.loraA.weight.value = f.a
            l.loraB.weight.value = f.b
        }
        return lora
    }
}
