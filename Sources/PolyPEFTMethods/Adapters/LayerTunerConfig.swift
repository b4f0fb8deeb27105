import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A method that wraps the modules named by `target_modules` (LoRA, Poly, IA3): PEFT's `BaseTuner` injection.
///
/// `attach` walks the model's modules in order; a module is targeted when `target_modules` (or the model's default
/// targets) matches its dotted path, `exclude_modules` does not, and it is not a `modules_to_save` entry. Each
/// targeted module is replaced in place by `makeAdapter(wrapping:path:in:using:)`. Without `target_modules`, the
/// caller's `defaultTargets` or else the method's default for the model's type (`defaultTargetModules(modelType:)`).
public protocol LayerTunerConfig: PeftConfig {
    /// PEFT's default targets of this method for a model type. Default: LoRA's mapping (`DefaultTargets.lora`).
    static func defaultTargetModules(modelType: String) -> [String]?
    /// Wraps the targeted layer at `path` of `model`; throws a `ConfigError` naming the path when the method cannot wrap it.
    func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer
    /// Base parameters the method trains and saves besides its adapters (LoRA's `bias`), after injection. Default: none.
    func trainedBaseParameters(of model: Module, adapters: [(path: String, adapter: any Adapter)]) -> [(key: String, parameter: Parameter)]
}

extension LayerTunerConfig {
    public static func defaultTargetModules(modelType: String) -> [String]? { DefaultTargets.lora[modelType] }

    public func trainedBaseParameters(of model: Module, adapters: [(path: String, adapter: any Adapter)])
        -> [(key: String, parameter: Parameter)] { [] }

    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        try attachLayers(to: model, defaultTargets: defaultTargets, using: &rng)
    }

    /// Replaces every targeted layer by `makeAdapter(wrapping:path:in:using:)`, in module order: the default `attach`,
    /// and the first step of a method that does more.
    public func attachLayers(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let chosen = try targetedLayers(of: model, defaultTargets: defaultTargets)
        var adapters: [(path: String, adapter: any Adapter)] = []
        for (path, layer) in chosen {
            let adapter = try makeAdapter(wrapping: layer, path: path, in: model, using: &rng)
            try model.replace(path: path, with: adapter)
            adapters.append((path, adapter))
        }
        return PeftAttachment(adapters: adapters, trainedBaseParameters: trainedBaseParameters(of: model, adapters: adapters))
    }

    /// `target_modules`, else `defaultTargets`, else the method's default for the model's type.
    func resolvedTargets(of model: Module, defaultTargets: TargetModules?) throws -> TargetModules? {
        if let t = targetModules ?? defaultTargets { return t }
        return DefaultTargets.modelType(of: model).flatMap { Self.defaultTargetModules(modelType: $0) }.map { .names($0) }
    }

    /// The layers `target_modules` selects, in module order; a selected module that is not a layer, or a selection
    /// that is empty, is an error.
    func targetedLayers(of model: Module, defaultTargets: TargetModules?) throws -> [(String, any Layer)] {
        guard let targets = try resolvedTargets(of: model, defaultTargets: defaultTargets) else {
            throw ConfigError("target_modules is not set and this model has no default targets")
        }
        let saveList = modulesToSave ?? []
        var chosen: [(String, any Layer)] = []
        for (path, module) in model.namedModules() where !path.isEmpty {
            guard try targets.matches(path) else { continue }
            if let ex = excludeModules, try ex.matches(path) { continue }
            if saveList.contains(where: { TargetModules.name(path, matches: $0) }) { continue }
            guard let layer = module as? any Layer else {
                throw ConfigError("target module '\(path)' is a \(type(of: module)), which has no single input and output to adapt")
            }
            chosen.append((path, layer))
        }
        guard !chosen.isEmpty else { throw ConfigError("target modules \(targets.summary) matched no module of the model") }
        return chosen
    }
}

/// `layer` as a `Linear`, or the error PEFT's tuners give for a layer type they do not support.
func requireLinear(_ layer: any Layer, path: String, method: String) throws -> Linear {
    guard let linear = layer as? Linear else {
        throw ConfigError("target module '\(path)' is a \(type(of: layer)); \(method) adapts only Linear layers")
    }
    return linear
}
