import Foundation
import PolyPEFTCore

/// An adapter folder of the `adapters` library (AdapterHub) at the level of files: `adapter_config.json` and the
/// weights `adapter.safetensors`, keys exactly as stored. Mapping keys onto modules and the method config onto a
/// PolyPEFT config happens above (`PeftModel.loadAdapterHub`).
///
/// Layout written by the library's `model.save_adapter(directory, name, use_safetensors=True)` (adapter-hub/adapters,
/// `src/adapters/loading.py`, `AdapterLoader.save`; `build_full_config` in `configuration/model_adapters_config.py`):
/// ```
/// directory/adapter_config.json   json.dump(full_config, indent=2, sort_keys=True), no trailing newline:
///     {"config": {<the method's config: AdapterConfig.to_dict()>},
///      "hidden_size": 768, "model_class": "BertModel", "model_name": "bert-base-uncased",
///      "model_type": "bert", "name": "<adapter name>", "version": "adapters.1.3.0"}
/// directory/adapter.safetensors   safetensors, no metadata; the model's state_dict entries whose key holds
///     ".adapters.<name>.", ".loras.<name>.", ".prefix_tunings.<name>.", ".shared_parameters.<name>." (and the
///     library's other method modules), e.g. bert.encoder.layer.0.output.adapters.<name>.adapter_down.0.weight
/// ```
/// Without `use_safetensors` the library writes `pytorch_adapter.bin` (a PyTorch pickle), which is refused here with
/// the Python line that converts it. A prediction head the library saves beside the adapter (`head_config.json`,
/// `model_head.safetensors`) is not part of the adapter and is not read.
public struct AdapterHubFolder: Equatable, Sendable {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter.safetensors"
    /// The library's default (pickle) weights file, which we refuse to read.
    public static let legacyWeightsFileName = "pytorch_adapter.bin"
    /// The `version` PolyPEFT writes: the library release whose format it follows and is tested against.
    public static let formatVersion = "adapters.1.3.0"

    /// The method's config (the file's `config` object), as the library's `AdapterConfig.to_dict()` writes it.
    public var config: JSONValue
    /// The adapter's name (`name`), which is also a level of every weight key.
    public var name: String
    /// `model_class`: the Hugging Face class the adapter was saved from (`"BertModel"`).
    public var modelClass: String?
    /// `model_name`: the base model's name or path (`""` for a model built from a config).
    public var modelName: String?
    /// `model_type` (`"bert"`, `"t5"`).
    public var modelType: String?
    /// `hidden_size` of the base model.
    public var hiddenSize: Int?
    /// `version`: `"adapters.<release>"` (absent in files of the library's predecessor, adapter-transformers).
    public var version: String?
    /// Any other top-level key of `adapter_config.json` (`label2id`, `type`), kept and written back verbatim.
    public var otherKeys: [String: JSONValue]
    /// The weights, under the library's keys.
    public var tensors: [String: Tensor]

    public init(config: JSONValue, name: String, modelClass: String? = nil, modelName: String? = nil,
                modelType: String? = nil, hiddenSize: Int? = nil, version: String? = formatVersion,
                otherKeys: [String: JSONValue] = [:], tensors: [String: Tensor]) {
        self.config = config
        self.name = name
        self.modelClass = modelClass
        self.modelName = modelName
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.version = version
        self.otherKeys = otherKeys
        self.tensors = tensors
    }

    static let metadataKeys: Set<String> = ["config", "name", "model_class", "model_name", "model_type", "hidden_size", "version"]

    /// The whole `adapter_config.json` object.
    public var configFile: JSONValue {
        var o = otherKeys
        o["config"] = config
        o["name"] = .string(name)
        o["model_class"] = modelClass.map(JSONValue.string) ?? .null
        o["model_name"] = modelName.map(JSONValue.string) ?? .null
        o["model_type"] = modelType.map(JSONValue.string) ?? .null
        o["hidden_size"] = hiddenSize.map(JSONValue.int) ?? .null
        if let version { o["version"] = .string(version) }
        return .object(o)
    }

    /// True when `directory` holds the library's `adapter_config.json` and one of its weight files (not PEFT's
    /// `adapter_model.safetensors`).
    public static func isAdapterHubFolder(_ directory: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: directory.appendingPathComponent(configFileName).path)
            && (fm.fileExists(atPath: directory.appendingPathComponent(weightsFileName).path)
                || fm.fileExists(atPath: directory.appendingPathComponent(legacyWeightsFileName).path))
    }

    /// Reads `adapter_config.json` and `adapter.safetensors` from `directory`. Float tensors of any floating dtype
    /// load as `Float`. Errors name the file and the key.
    public static func read(from directory: URL) throws -> AdapterHubFolder {
        let fm = FileManager.default
        let configURL = try PeftAdapterFolder.configFile(in: directory, named: configFileName, of: "an adapters (AdapterHub) adapter folder")
        let weightsURL = directory.appendingPathComponent(weightsFileName)
        guard fm.fileExists(atPath: weightsURL.path) else {
            let legacy = directory.appendingPathComponent(legacyWeightsFileName)
            if fm.fileExists(atPath: legacy.path) {
                throw FileFormatError(path: legacy.path, "not supported: \(legacyWeightsFileName) is a PyTorch pickle; convert it "
                    + "to safetensors in Python (model.load_adapter(dir); model.save_adapter(dir, name, use_safetensors=True))")
            }
            if fm.fileExists(atPath: directory.appendingPathComponent(PeftAdapterFolder.weightsFileName).path) {
                throw FileFormatError(path: weightsURL.path, "missing: this is a PEFT adapter folder (\(PeftAdapterFolder.weightsFileName)), "
                    + "not an adapters library one")
            }
            throw FileFormatError(path: weightsURL.path, "missing \(weightsFileName)")
        }
        let file = try PeftAdapterFolder.readJSONObject(at: configURL)
        let o = file.objectValue ?? [:]
        func string(_ key: String) throws -> String? {
            guard let v = o[key], v != .null else { return nil }
            guard let s = v.stringValue else {
                throw FileFormatError(path: configURL.path, "\"\(key)\" must be a string, found \(v.kindName)")
            }
            return s
        }
        guard let config = o["config"], case .object = config else {
            throw FileFormatError(path: configURL.path, "\"config\" must be an object (the adapter method's config), found "
                + (o["config"]?.kindName ?? "nothing"))
        }
        guard let name = try string("name"), !name.isEmpty else {
            throw FileFormatError(path: configURL.path, "\"name\" (the adapter's name) is missing or empty")
        }
        var hidden: Int?
        if let v = o["hidden_size"], v != .null {
            guard let h = v.intValue, h > 0 else {
                throw FileFormatError(path: configURL.path, "\"hidden_size\" must be a positive integer, found \(v.compactString())")
            }
            hidden = h
        }
        let tensors = try SafetensorsFile(contentsOf: weightsURL).allTensors()
        return AdapterHubFolder(config: config, name: name, modelClass: try string("model_class"), modelName: try string("model_name"),
                                modelType: try string("model_type"), hiddenSize: hidden, version: try string("version"),
                                otherKeys: o.filter { !metadataKeys.contains($0.key) }, tensors: tensors)
    }

    /// Writes the folder as `save_adapter(directory, name, use_safetensors=True)` does: `adapter.safetensors`
    /// (tensors stored as `dtype`, no metadata) then `adapter_config.json` (Python style), each replaced atomically;
    /// `directory` is created if needed.
    public func write(to directory: URL, dtype: SafetensorsDType = .F32) throws {
        guard case .object = config else {
            throw FileFormatError(path: directory.path, "adapter config must be a JSON object, not a \(config.kindName)")
        }
        guard !name.isEmpty, !name.contains("/") else {
            throw FileFormatError(path: directory.path, "invalid adapter name \"\(name)\"")
        }
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw FileFormatError(path: directory.path, "cannot create the adapter folder (\(error.localizedDescription))")
        }
        try Safetensors.write(tensors, dtype: dtype, to: directory.appendingPathComponent(Self.weightsFileName))
        try AtomicFile.write(configFile.pythonStyleString(indent: 2, sortKeys: true),
                             to: directory.appendingPathComponent(Self.configFileName))
    }
}
