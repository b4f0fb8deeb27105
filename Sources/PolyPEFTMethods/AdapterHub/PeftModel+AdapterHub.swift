import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Reading and writing the adapters library's (AdapterHub's) folders, so that an adapter trained with
/// `model.add_adapter(...)`, `train_adapter` and `save_adapter(..., use_safetensors=True)` in Python runs here, and one
/// trained here loads with `model.load_adapter(dir, use_safetensors=True)`.
///
/// Keys: ours are PEFT-style (`base_model.model.<path>.<tensor>`), the library's are the module path with the
/// adapter's name as one level (`AdapterHubAdapter.adapterHubKeys`). The library saves from whichever model class held
/// the adapter, so a key may carry the class's base-model prefix (`bert.`, `transformer.`) or lack one ours has
/// (a BERT classifier's `bert.`); a key that matches only without its first component, or only with one of ours
/// added, is taken that way (`aligningPrefix`).
extension PeftModel {
    /// Our saved key and the library's keys (first the canonical one, then aliases) of every tensor the adapter file
    /// holds, in order; the first `written` of them are what we write.
    /// `omittingSavedModules` leaves trained base parameters and `modules_to_save` (a classifier head) out instead of
    /// refusing them: the library keeps heads in their own files, in a layout of its flexible-head models.
    func adapterHubKeyTable(name: String, omittingSavedModules: Bool = false) throws
        -> [(ours: String, theirs: [String], written: Int, tensor: Tensor)] {
        guard config is any AdapterHubMethod else {
            throw ConfigError("\(config.peftType) has no adapters-library format (it has: "
                + AdapterHubMethods.registered.map { $0.peftType }.joined(separator: ", ") + ")")
        }
        guard omittingSavedModules || (trainedBaseParameters.isEmpty && savedModules.isEmpty) else {
            throw ConfigError("the adapters library's adapter folder holds the adapter only; this model also trains "
                + "base parameters or modules_to_save (\((trainedBaseParameters.map(\.key) + savedModules).joined(separator: ", "))), "
                + "which it cannot hold")
        }
        guard !name.isEmpty, !name.contains("."), !name.contains("/") else {
            throw ConfigError("adapter name \"\(name)\" cannot be a level of the library's keys (no '.', no '/', not empty)")
        }
        var table: [(String, [String], Int, Tensor)] = []
        for (path, a) in adapters {
            guard let hub = a as? any AdapterHubAdapter else {
                throw ConfigError("\(path): \(type(of: a)) has no keys in the adapters library's format")
            }
            for (tensorName, t) in try a.savedTensors() {
                let keys = hub.adapterHubKeys(tensor: tensorName, name: name)
                table.append((a.savedKeyPrefix + tensorName, keys + hub.adapterHubAliases(tensor: tensorName, name: name), keys.count, t))
            }
        }
        return table
    }

    /// The adapter's tensors under the adapters library's keys for an adapter called `name` (the aliases a
    /// bottleneck's `ln_before` has included, as the library's `state_dict()` lists them; the prefix pool's copies
    /// under every attention layer left out).
    public func adapterHubTensors(name: String, omittingSavedModules: Bool = false) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (_, theirs, written, t) in try adapterHubKeyTable(name: name, omittingSavedModules: omittingSavedModules) {
            for k in theirs.prefix(written) { out[k] = t }
        }
        return out
    }

    /// The adapter as the adapters library's folder for an adapter called `name` (`modelName` is the folder's
    /// `model_name`, the base model's hub name or path; `""` as the library writes for a model built from a config).
    /// The model class, type and hidden size come from the model (`PretrainedModel`). Unlike the library's
    /// `save_adapter`, Compacter's shared parameters (`shared_parameters.<name>.*`) are saved too, so the folder is
    /// complete (the library loads them). Trained base parameters and `modules_to_save` are an error, or left out
    /// with `omittingSavedModules`.
    public func adapterHubFolder(name: String, modelName: String = "", omittingSavedModules: Bool = false) throws -> AdapterHubFolder {
        guard let method = config as? any AdapterHubMethod else { throw ConfigError("\(config.peftType) has no adapters-library format") }
        if let key = method.adapterHubConfig.polyPEFTKey {
            throw ConfigError("the adapters library has no '\(key)' (task-routed gates are PolyPEFT's): this adapter has no "
                + "adapters-library format; save it as a PEFT folder")
        }
        let tensors = try adapterHubTensors(name: name, omittingSavedModules: omittingSavedModules)
        let pretrained = model as? any PretrainedModel
        return AdapterHubFolder(config: method.adapterHubConfig, name: name, modelClass: pretrained?.huggingFaceClassName,
                                modelName: modelName, modelType: pretrained?.modelType, hiddenSize: pretrained?.hiddenSize,
                                tensors: tensors)
    }

    /// Writes the adapters library's folder (`adapterHubFolder(name:modelName:)`) into `directory`.
    public func saveAdapterHub(to directory: URL, name: String, modelName: String = "", omittingSavedModules: Bool = false) throws {
        try adapterHubFolder(name: name, modelName: modelName, omittingSavedModules: omittingSavedModules).write(to: directory)
    }

    /// Reads an adapters-library folder and attaches its adapter to `model` (whose base weights are loaded).
    ///
    /// The folder's `model_type` and `hidden_size` must match the model's. Every tensor the adapter needs must be in
    /// the file, or in `supplementing` (under the library's keys): the library's `save_adapter` leaves out Compacter's
    /// shared parameters (its key filter wants `.shared_parameters.<name>.` with a leading dot), and re-initialises
    /// them at random when it loads such a folder; here their absence is an error naming them, and they can be given
    /// from elsewhere (the Python model's `shared_parameters` state). An alias stored beside its tensor must hold the
    /// same values; no other key may appear. NaN or infinite values are refused unless `allowNonFinite`.
    public static func loadAdapterHub(from directory: URL, into model: Module, supplementing: [String: Tensor] = [:],
                                      allowNonFinite: Bool = false) throws -> PeftModel {
        let folder = try AdapterHubFolder.read(from: directory)
        let configPath = directory.appendingPathComponent(AdapterHubFolder.configFileName).path
        let weightsPath = directory.appendingPathComponent(AdapterHubFolder.weightsFileName).path
        if let pretrained = model as? any PretrainedModel {
            if let t = folder.modelType, t != pretrained.modelType {
                throw ConfigError("\(configPath): model_type is \"\(t)\", the model is \"\(pretrained.modelType)\"")
            }
            if let h = folder.hiddenSize, h != pretrained.hiddenSize {
                throw ConfigError("\(configPath): hidden_size is \(h), the model's is \(pretrained.hiddenSize)")
            }
        }
        let config = try AdapterHubMethods.config(adapterHubConfig: folder.config, context: "\(configPath) config")
        var rng = Xoshiro256(seed: 0)   // initial values are overwritten by the loaded tensors
        let peft = try PeftModel(wrapping: model, config: config, using: &rng)
        try peft.loadAdapterHubTensors(folder.tensors.merging(supplementing) { file, _ in file }, name: folder.name,
                                       source: weightsPath, allowNonFinite: allowNonFinite)
        return peft
    }

    /// Loads tensors under the adapters library's keys for an adapter called `name` (see `loadAdapterHub`).
    public func loadAdapterHubTensors(_ given: [String: Tensor], name: String, source: String, allowNonFinite: Bool = false) throws {
        let table = try adapterHubKeyTable(name: name)
        let known = Set(table.flatMap(\.theirs))
        let tensors = try Self.aligningPrefix(given, to: known, source: source)
        if let extra = tensors.keys.sorted().first(where: { !known.contains($0) }) {
            let example = table.first.map { " (keys here look like '\($0.theirs[0])')" } ?? ""
            throw ConfigError("\(source): unexpected tensor '\(extra)': the model has no such parameter of adapter '\(name)'\(example)")
        }
        var ours: [String: Tensor] = [:]
        for (key, theirs, _, expected) in table {
            let present = theirs.filter { tensors[$0] != nil }
            guard let first = present.first, let t = tensors[first] else {
                if theirs[0].hasPrefix("shared_parameters.") {
                    throw ConfigError("\(source): missing tensor '\(theirs[0])': the adapters library's save_adapter does not save "
                        + "shared parameters (Compacter's shared phm rule); give it with `supplementing` (from the Python model's "
                        + "shared_parameters['\(name)'] state)")
                }
                throw ConfigError("\(source): missing tensor '\(theirs[0])'")
            }
            guard t.shape == expected.shape else {
                throw ConfigError("\(source): tensor '\(first)' has shape \(fmt(t.shape)), the model expects \(fmt(expected.shape))")
            }
            for alias in present.dropFirst() where tensors[alias] != t {
                throw ConfigError("\(source): '\(alias)' and '\(first)' name one tensor of the library's model, but the file holds different values")
            }
            if !allowNonFinite { try NonFiniteWeightsError.check(t, key: first, source: source) }
            ours[key] = t
        }
        // Shapes and values are checked above, under the library's keys.
        try loadAdapterTensors(ours, source: source, allowNonFinite: true)
    }

    /// `tensors` with keys matched to `known` up to one leading path component: a key that is not known as it stands
    /// is taken without its first component (`bert.`, saved from a model with a head) or with a first component our
    /// keys have (`bert.`, saved from the bare model) when exactly one of those is known; otherwise it stays as is.
    static func aligningPrefix(_ tensors: [String: Tensor], to known: Set<String>, source: String) throws -> [String: Tensor] {
        if tensors.keys.allSatisfy(known.contains) { return tensors }
        let heads = Set(known.compactMap { k in k.firstIndex(of: ".").map { String(k[..<$0]) } })
        var out: [String: Tensor] = [:]
        for (key, t) in tensors {
            var candidates = [key]
            if !known.contains(key) {
                candidates = heads.map { $0 + "." + key }.filter(known.contains)
                if let dot = key.firstIndex(of: "."), known.contains(String(key[key.index(after: dot)...])) {
                    candidates.append(String(key[key.index(after: dot)...]))
                }
                if candidates.count != 1 { candidates = [key] }
            }
            guard out[candidates[0]] == nil else {
                throw ConfigError("\(source): '\(key)' and another key name the same tensor once a model prefix is dropped")
            }
            out[candidates[0]] = t
        }
        return out
    }
}
