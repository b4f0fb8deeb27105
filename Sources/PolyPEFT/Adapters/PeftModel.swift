import Foundation

/// A model with adapters injected by name, as PEFT's `get_peft_model`.
///
/// The base model's forward is unchanged: adapters replace its `Linear` children in place, read task ids from the
/// `Context`, and the wrapper freezes every base parameter. Adapter tensors are exchanged with PEFT under its keys:
/// `base_model.model.<module path>.<adapter tensor>` (`poly_lora_A`, `poly_lora_B`, `poly_router.module_logits`,
/// `lora_A.weight`, `lora_B.weight`) and `base_model.model.<path>.<name>` for `modules_to_save`.
public final class PeftModel {
    /// The model tree, with adapters in place.
    public let model: Module
    /// The adapter's config (kept in step by `addTasks` and `setRoutingOptions`).
    public internal(set) var config: AdapterConfig
    /// Adapted layers by dotted path, in module order.
    public private(set) var adapters: [(path: String, layer: any AdapterLayer)] = []
    /// Modules made trainable and saved whole.
    public private(set) var savedModules: [String] = []

    public static let keyPrefix = "base_model.model."

    /// Injects adapters described by `config` into `model`. `defaultTargets` stands in when the config names no
    /// targets (PEFT's per-model-type defaults, e.g. T5's `["q", "v"]`).
    public init(wrapping model: Module, config: AdapterConfig, defaultTargets: TargetModules? = nil,
                using rng: inout some RandomNumberGenerator) throws {
        self.model = model
        self.config = config
        guard let targets = config.targetModules ?? defaultTargets else {
            throw ConfigError("target_modules is not set and this model has no default targets")
        }
        let saveList = config.modulesToSave ?? []
        var chosen: [(String, Linear)] = []
        for (path, module) in model.namedModules() where !path.isEmpty {
            guard try targets.matches(path) else { continue }
            if let ex = config.excludeModules, try ex.matches(path) { continue }
            if saveList.contains(where: { path == $0 || path.hasSuffix("." + $0) }) { continue }
            guard let linear = module as? Linear else {
                throw ConfigError("target module '\(path)' is a \(type(of: module)); only Linear layers can be adapted")
            }
            chosen.append((path, linear))
        }
        guard !chosen.isEmpty else {
            throw ConfigError("target modules \(targets.summary) matched no module of the model")
        }
        model.freeze()
        for (path, linear) in chosen {
            let layer: any AdapterLayer
            switch config {
            case .poly(let c):
                layer = try PolyLinear(wrapping: linear, path: path, r: c.r, nTasks: c.nTasks, nSkills: c.nSkills,
                                       nSplits: c.nSplits, initWeights: c.initWeights, mixing: c.mixing, using: &rng)
            case .lora(let c):
                layer = try LoRALinear(wrapping: linear, path: path, r: c.r, alpha: Float(c.loraAlpha),
                                       dropout: Float(c.loraDropout), useRslora: c.useRslora,
                                       initialization: c.initLoraWeights, using: &rng)
            }
            try model.replace(path: path, with: layer)
            adapters.append((path, layer))
        }
        for entry in saveList {
            let matches = model.namedModules().filter { !$0.path.isEmpty && ($0.path == entry || $0.path.hasSuffix("." + entry)) }
            guard !matches.isEmpty else { throw ConfigError("modules_to_save entry '\(entry)' matched no module of the model") }
            for (path, m) in matches {
                m.setRequiresGrad(true)
                savedModules.append(path)
            }
        }
        if case .poly(let c) = config { try applyRoutingOptions(c.routing) }
    }

    /// The adapter's tensors under PEFT's keys.
    public func adapterTensors() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (key, p) in adapterParameters() { out[key] = p.value }
        foldPendingTaskRows(into: &out)
        return out
    }

    /// Adapter and saved-module parameters under PEFT's keys (what is trained and saved).
    public func adapterParameters() -> [(key: String, parameter: Parameter)] {
        var out: [(String, Parameter)] = []
        for (path, layer) in adapters {
            for (name, p) in layer.adapterParameters() { out.append((PeftModel.keyPrefix + path + "." + name, p)) }
        }
        for path in savedModules {
            for (name, p) in model.module(at: path)!.namedParameters() { out.append((PeftModel.keyPrefix + path + "." + name, p)) }
        }
        return out
    }

    /// Loads adapter tensors saved under PEFT's keys. Every expected key must be present with its shape, and no
    /// other key may appear; errors name the key and both shapes.
    public func loadAdapterTensors(_ tensors: [String: Tensor], source: String = "adapter") throws {
        let params = adapterParameters()
        let expected = Set(params.map(\.key))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw ConfigError("\(source): unexpected tensor '\(extra)' (the model has no such adapter parameter)")
        }
        for (key, p) in params {
            guard let t = tensors[key] else { throw ConfigError("\(source): missing tensor '\(key)'") }
            guard t.shape == p.value.shape else {
                throw ConfigError("\(source): tensor '\(key)' has shape \(fmt(t.shape)), the model expects \(fmt(p.value.shape))")
            }
        }
        try checkSharedParameters(params, tensors, source: source)
        for (key, p) in params { p.value = tensors[key]!.contiguous() }
    }

    /// Poly layers, by path.
    public var polyLayers: [(path: String, layer: PolyLinear)] {
        adapters.compactMap { a in (a.layer as? PolyLinear).map { (a.path, $0) } }
    }

    /// Evaluation-mode routing readout: for each Poly layer, the mixing weights `[n_tasks, S, K]`.
    public func routing() throws -> [(path: String, weights: Tensor)] {
        try polyLayers.map { ($0.path, try $0.layer.routingWeights()) }
    }

    /// PEFT's `print_trainable_parameters()` line.
    public func parameterSummary() -> String { model.parameterSummary() }
}

extension PeftModel {
    /// Wraps with a Poly config.
    public convenience init(wrapping model: Module, config: PolyConfig, defaultTargets: TargetModules? = nil,
                            using rng: inout some RandomNumberGenerator) throws {
        try self.init(wrapping: model, config: .poly(config), defaultTargets: defaultTargets, using: &rng)
    }

    /// Wraps with a LoRA config.
    public convenience init(wrapping model: Module, config: LoraConfig, defaultTargets: TargetModules? = nil,
                            using rng: inout some RandomNumberGenerator) throws {
        try self.init(wrapping: model, config: .lora(config), defaultTargets: defaultTargets, using: &rng)
    }

    /// Writes the adapter as PEFT's `save_pretrained` does (a sub-folder for a non-default adapter name).
    public func save(to directory: URL, adapterName: String = PeftAdapterFolder.defaultAdapterName) throws {
        try PeftAdapterFolder.write(config: config.json, tensors: adapterTensors(), to: directory, adapterName: adapterName)
    }

    /// Reads a PEFT adapter folder and injects it into `model` (whose base weights are already loaded).
    public static func load(from directory: URL, into model: Module, defaultTargets: TargetModules? = nil) throws -> PeftModel {
        let (json, tensors) = try PeftAdapterFolder.read(from: directory)
        let config = try AdapterConfig(json: json, context: directory.appendingPathComponent(PeftAdapterFolder.configFileName).path)
        var rng = Xoshiro256(seed: 0)   // initial values are overwritten by the loaded tensors
        let peft = try PeftModel(wrapping: model, config: config, defaultTargets: defaultTargets, using: &rng)
        try peft.loadAdapterTensors(tensors, source: directory.appendingPathComponent(PeftAdapterFolder.weightsFileName).path)
        return peft
    }
}
