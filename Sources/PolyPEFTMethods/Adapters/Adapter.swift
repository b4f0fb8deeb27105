import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// What every method's adapter is to a `PeftModel`: parameters, the tensors it saves under PEFT's keys, and merging.
///
/// An adapter sits at a dotted `path` of its model: a layer it wraps (`AdapterLayer`: LoRA, Poly, IA3) or a
/// model-level source (prefix tuning's encoder, at the path `""`). Its tensors are saved as `savedKeyPrefix + name`:
/// `base_model.model.<path>.<name>` by default, a bare `prompt_embeddings` for prefix tuning.
public protocol Adapter: AnyObject {
    /// The dotted path of the adapter in its model, used in keys, errors and recorded intermediates.
    var path: String { get }
    /// The adapter's own parameters with names relative to it (`lora_A.weight`, `poly_router.module_logits`): what
    /// trains.
    func adapterParameters() -> [(name: String, parameter: Parameter)]
    /// What the adapter file holds for this adapter, by relative name. Default: the parameters' values. A method
    /// whose file differs from its training parameters overrides it (Poly folds pending task rows into
    /// `module_logits`; prefix tuning with a projection saves the projected table).
    func savedTensors() throws -> [(name: String, tensor: Tensor)]
    /// Takes tensors of a file back, by relative name (names and shapes already checked against `savedTensors()`).
    /// Default: into the parameters of the same names.
    func loadSavedTensors(_ tensors: [String: Tensor]) throws
    /// What precedes a relative name in the file's keys. Default: `base_model.model.<path>.`.
    var savedKeyPrefix: String { get }
    /// What is merged into the base weights right now (`"the LoRA update"`, `"task 3's update"`), or nil.
    var mergedUpdate: String? { get }
    /// Folds the adapter into the base weights, so that a forward costs the base alone. A method that cannot merge
    /// throws a `ConfigError` saying so (the default).
    func merge() throws
    /// Takes a merged update out of the base weights again (nothing to do when none is merged).
    func unmerge() throws

    /// The role in training of the adapter parameter called `name` (a name of `adapterParameters()`). Default:
    /// `.adapter` for every parameter.
    func parameterRole(_ name: String) -> ParameterRole
}

extension Adapter {
    public func savedTensors() throws -> [(name: String, tensor: Tensor)] {
        adapterParameters().map { ($0.name, $0.parameter.value) }
    }

    public func loadSavedTensors(_ tensors: [String: Tensor]) throws { loadParameters(tensors) }

    /// Sets each parameter named in `tensors` to its tensor (the default load, for overrides to end with).
    public func loadParameters(_ tensors: [String: Tensor]) {
        for (name, p) in adapterParameters() { if let t = tensors[name] { p.value = t.contiguous() } }
    }

    public var savedKeyPrefix: String { PeftModel.keyPrefix + (path.isEmpty ? "" : path + ".") }

    public var mergedUpdate: String? { nil }

    public func merge() throws {
        throw ConfigError("\(path.isEmpty ? "adapter" : path): \(type(of: self)) cannot be merged into the base weights")
    }

    public func unmerge() throws {}
}

/// What a method attached to a model (`PeftConfig.attach`).
public struct PeftAttachment {
    /// The adapters, by path, in module order.
    public var adapters: [(path: String, adapter: any Adapter)] = []
    /// Base-model parameters the method trains and saves (LoRA's `bias = "all"`), under their saved keys.
    public var trainedBaseParameters: [(key: String, parameter: Parameter)] = []

    public init(adapters: [(path: String, adapter: any Adapter)] = [],
                trainedBaseParameters: [(key: String, parameter: Parameter)] = []) {
        self.adapters = adapters
        self.trainedBaseParameters = trainedBaseParameters
    }
}

extension Adapter {
    public func parameterRole(_ name: String) -> ParameterRole { .adapter }
}
