import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A model with a PEFT method attached, as PEFT's `get_peft_model`.
///
/// The base model's forward is unchanged: a method attaches through the model's own structure (layer tuners replace
/// targeted layers in place; see `PeftConfig.attach`), and the wrapper freezes every base parameter except those the
/// method trains. Adapter tensors are exchanged with PEFT under its keys: `base_model.model.<path>.<tensor>`
/// (`poly_lora_A`, `lora_A.weight`, `ia3_l`) and `base_model.model.<path>.<name>` for `modules_to_save`
/// (`base_model.<path>.<name>` under prompt learning, `PeftConfig.isPromptLearning`). As PEFT's task wrappers do,
/// the task type's heads join `modules_to_save` (`PeftCommonConfig.taskHeads(for:)`: a `SEQ_CLS` classifier trains
/// and is saved). Saved modules train in place: with adapters disabled they keep their trained values (PEFT's
/// `ModulesToSaveWrapper` falls back to a copy of the original).
public final class PeftModel {
    /// The model tree, with adapters in place.
    public let model: Module
    /// The method's config (kept in step by `addTasks` and `setRoutingOptions`).
    public internal(set) var config: any PeftConfig
    /// The adapters, by dotted path, in module order.
    public private(set) var adapters: [(path: String, layer: any Adapter)] = []
    /// Base parameters the method trains and saves (LoRA's `bias`), under their saved keys.
    public private(set) var trainedBaseParameters: [(key: String, parameter: Parameter)] = []
    /// Modules made trainable and saved whole.
    public private(set) var savedModules: [String] = []
    /// The key prefix of saved modules' tensors: `base_model.model.`, or `base_model.` under prompt learning.
    public let savedModuleKeyPrefix: String

    public static let keyPrefix = "base_model.model."

    /// Attaches the method `config` describes to `model`. `defaultTargets` stands in when a layer tuner's config
    /// names no targets (PEFT's per-model-type defaults, e.g. T5's `["q", "v"]`).
    public init(wrapping model: Module, config: any PeftConfig, defaultTargets: TargetModules? = nil,
                using rng: inout some RandomNumberGenerator) throws {
        self.model = model
        var config = try config.resolved(for: model)
        let heads = PeftCommonConfig.taskHeads(for: config.taskType)
        if !heads.isEmpty {
            let listed = config.modulesToSave ?? []
            config.modulesToSave = listed + heads.filter { !listed.contains($0) }
        }
        self.config = config
        savedModuleKeyPrefix = type(of: config).isPromptLearning ? "base_model." : PeftModel.keyPrefix
        try config.validate(context: "\(type(of: config).peftType) config")
        // modules_to_save is resolved before anything changes, and a failed attach leaves the model's trainability
        // as it was, so a config that fails can be corrected and tried again on the same model.
        var saved: [(path: String, module: Module)] = []
        for entry in config.modulesToSave ?? [] {
            let matches = model.namedModules().filter { !$0.path.isEmpty && TargetModules.name($0.path, matches: entry) }
            guard !matches.isEmpty || heads.contains(entry) else {
                throw ConfigError("modules_to_save entry '\(entry)' matched no module of the model")
            }
            for (path, m) in matches where !saved.contains(where: { $0.path == path }) { saved.append((path, m)) }
        }
        let trainable = model.namedParameters().map { ($0.parameter, $0.parameter.requiresGrad) }
        model.freeze()
        let attachment: PeftAttachment
        do {
            attachment = try config.attach(to: model, defaultTargets: defaultTargets, using: &rng)
        } catch {
            for (p, flag) in trainable { p.requiresGrad = flag }
            throw error
        }
        self.config = config.recording(attachment)
        adapters = attachment.adapters.map { ($0.path, $0.adapter) }
        trainedBaseParameters = attachment.trainedBaseParameters
        for (_, p) in trainedBaseParameters { p.requiresGrad = true }
        for (path, m) in saved {
            m.setRequiresGrad(true)
            savedModules.append(path)
        }
    }

    /// The adapter file's tensors under PEFT's keys: each adapter's saved tensors, trained base parameters and saved
    /// modules.
    public func adapterTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (key, t) in savedEntries(try savedTensorsByAdapter()) { out[key] = t }
        return out
    }

    /// Adapter, trained base and saved-module parameters under PEFT's keys (what trains; a parameter shared by
    /// several adapters is listed under each of their keys).
    public func adapterParameters() -> [(key: String, parameter: Parameter)] {
        var out: [(String, Parameter)] = []
        for (_, a) in adapters {
            for (name, p) in a.adapterParameters() { out.append((a.savedKeyPrefix + name, p)) }
        }
        return out + baseParameters()
    }

    /// Trained base parameters and saved modules' parameters, under their keys.
    private func baseParameters() -> [(key: String, parameter: Parameter)] {
        var out = trainedBaseParameters
        for path in savedModules {
            for (name, p) in model.module(at: path)!.namedParameters() { out.append((savedModuleKeyPrefix + path + "." + name, p)) }
        }
        return out
    }

    /// Each adapter with the tensors it saves, by relative name.
    private func savedTensorsByAdapter() throws -> [(adapter: any Adapter, tensors: [(name: String, tensor: Tensor)])] {
        try adapters.map { ($0.layer, try $0.layer.savedTensors()) }
    }

    /// Every tensor of the adapter file with its key, in order (from `savedTensorsByAdapter()`'s result).
    private func savedEntries(_ byAdapter: [(adapter: any Adapter, tensors: [(name: String, tensor: Tensor)])]) -> [(key: String, tensor: Tensor)] {
        byAdapter.flatMap { a, tensors in tensors.map { (a.savedKeyPrefix + $0.name, $0.tensor) } }
            + baseParameters().map { ($0.key, $0.parameter.value) }
    }

    /// Loads adapter tensors saved under PEFT's keys. Every expected key must be present with its shape, and no
    /// other key may appear; errors name the key and both shapes. A parameter shared by several adapters (a shared
    /// router) is saved under each of their keys, and those copies must agree. NaN or infinite values are refused
    /// (the error names the tensor and the first such element) unless `allowNonFinite`.
    public func loadAdapterTensors(_ tensors: [String: Tensor], source: String = "adapter", allowNonFinite: Bool = false) throws {
        let byAdapter = try savedTensorsByAdapter()
        let expected = savedEntries(byAdapter)
        let keys = Set(expected.map(\.key))
        if let extra = tensors.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ConfigError("\(source): unexpected tensor '\(extra)' (the model has no such adapter parameter)")
        }
        for (key, t) in expected {
            guard let given = tensors[key] else { throw ConfigError("\(source): missing tensor '\(key)'") }
            guard given.shape == t.shape else {
                throw ConfigError("\(source): tensor '\(key)' has shape \(fmt(given.shape)), the model expects \(fmt(t.shape))")
            }
            if !allowNonFinite { try NonFiniteWeightsError.check(given, key: key, source: source) }
        }
        try checkSharedParameters(tensors, source: source)
        for (a, saved) in byAdapter {
            var own: [String: Tensor] = [:]
            for (name, _) in saved { own[name] = tensors[a.savedKeyPrefix + name] }
            try a.loadSavedTensors(own)
        }
        for (key, p) in baseParameters() { p.value = tensors[key]!.contiguous() }
    }

    /// A parameter listed under several keys must be given equal tensors under all of them.
    private func checkSharedParameters(_ tensors: [String: Tensor], source: String) throws {
        var first: [ObjectIdentifier: String] = [:]
        for (key, p) in adapterParameters() where tensors[key] != nil {
            guard let earlier = first[ObjectIdentifier(p)] else { first[ObjectIdentifier(p)] = key; continue }
            guard tensors[key] == tensors[earlier] else {
                throw ConfigError("\(source): '\(key)' and '\(earlier)' are one shared parameter here (e.g. a router shared "
                    + "by layers) but the file holds different values; load with unshared parameters (per-layer routers)")
            }
        }
    }

    /// The adapters that wrap layers, by path.
    public var adapterLayers: [(path: String, layer: any AdapterLayer)] {
        adapters.compactMap { a in (a.layer as? any AdapterLayer).map { (a.path, $0) } }
    }

    /// Merges every adapter into the base weights (all or none: on failure the adapters merged so far are unmerged).
    public func merge() throws {
        var done: [any Adapter] = []
        do {
            for (_, a) in adapters {
                try a.merge()
                done.append(a)
            }
        } catch {
            for a in done.reversed() { try? a.unmerge() }
            throw error
        }
    }

    /// Takes every merged update out of the base weights again.
    public func unmerge() throws { for (_, a) in adapters.reversed() { try a.unmerge() } }

    /// PEFT's `print_trainable_parameters()` line.
    /// Clears the gradients of the model's parameters and of adapters that live outside its tree (prefix tuning's
    /// table).
    public func zeroGrad() {
        model.zeroGrad()
        for (_, p) in adapterParameters() { p.zeroGrad() }
    }

    /// The model's parameters and those of adapters that live outside its tree (prefix tuning's table) count.
    public func parameterSummary() -> String { Module.parameterSummary(countedParameters) }

    /// The scalars that train, as `parameterSummary()` counts them.
    public var trainableParameterCount: Int { Module.parameterCounts(countedParameters).trainable }

    /// The model's parameters and the adapters', each once.
    private var countedParameters: [Parameter] {
        (model.namedParameters().map(\.parameter) + adapterParameters().map(\.parameter)).uniqueObjects { $0 }
    }
}

extension PeftModel {
    /// Writes the adapter as PEFT's `save_pretrained` does (a sub-folder for a non-default adapter name).
    /// The config is written with `inference_mode: true`, as PEFT's `save_pretrained` writes it (a loader decides
    /// whether to train again).
    public func save(to directory: URL, adapterName: String = PeftAdapterFolder.defaultAdapterName) throws {
        var saved = config
        saved.inferenceMode = true
        try PeftAdapterFolder.write(config: saved.json, tensors: adapterTensors(), to: directory, adapterName: adapterName)
    }

    /// Reads a PEFT adapter folder and attaches it to `model` (whose base weights are already loaded).
    public static func load(from directory: URL, into model: Module, defaultTargets: TargetModules? = nil,
                            allowNonFinite: Bool = false) throws -> PeftModel {
        let (json, tensors) = try PeftAdapterFolder.read(from: directory)
        let config = try PeftMethods.config(json: json, context: directory.appendingPathComponent(PeftAdapterFolder.configFileName).path)
        var rng = Xoshiro256(seed: 0)   // initial values are overwritten by the loaded tensors
        let peft = try PeftModel(wrapping: model, config: config, defaultTargets: defaultTargets, using: &rng)
        try peft.loadAdapterTensors(tensors, source: directory.appendingPathComponent(PeftAdapterFolder.weightsFileName).path,
                                    allowNonFinite: allowNonFinite)
        return peft
    }
}
