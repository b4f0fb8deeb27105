import Foundation
import PolyPEFTCore

/// A Hugging Face PEFT adapter folder at the level of files: `adapter_config.json` (as `JSONValue`) and
/// `adapter_model.safetensors` (as `[String: Tensor]`, keys exactly as stored, e.g.
/// `base_model.model.fc1.poly_lora_A`). Mapping keys onto modules and the config onto `PolyConfig` happens above.
///
/// Layout written by PEFT's `PeftModel.save_pretrained(save_directory)` (huggingface/peft, `src/peft/peft_model.py`):
/// ```
/// output_dir = save_directory                  if adapter_name == "default"
///            = save_directory/<adapter_name>   otherwise
/// output_dir/adapter_model.safetensors   safetensors, metadata {"format": "pt"}
/// output_dir/adapter_config.json         json.dumps(config, indent=2, sort_keys=True), no trailing newline
/// ```
/// (PEFT also writes a model-card `README.md` in `save_directory`; we do not.)
public enum PeftAdapterFolder {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"
    /// The legacy pickle format, which we refuse to read.
    public static let legacyWeightsFileName = "adapter_model.bin"
    /// The adapter name PEFT saves directly in the save directory.
    public static let defaultAdapterName = "default"

    /// The folder `save_pretrained(directory)` uses for `adapterName`: `directory` itself for `"default"`, else
    /// `directory/adapterName`.
    public static func folder(for adapterName: String, in directory: URL) -> URL {
        adapterName == defaultAdapterName ? directory : directory.appendingPathComponent(adapterName, isDirectory: true)
    }

    /// Reads `adapter_config.json` and `adapter_model.safetensors` from `directory` (pass the adapter's own folder;
    /// see `folder(for:in:)`). Float tensors of any floating dtype load as `Float`.
    public static func read(from directory: URL) throws -> (config: JSONValue, tensors: [String: Tensor]) {
        let fm = FileManager.default
        let configURL = try configFile(in: directory, named: configFileName, of: "a PEFT adapter folder")
        let weightsURL = directory.appendingPathComponent(weightsFileName)
        guard fm.fileExists(atPath: weightsURL.path) else {
            let legacy = directory.appendingPathComponent(legacyWeightsFileName)
            if fm.fileExists(atPath: legacy.path) {
                throw FileFormatError(path: legacy.path, "not supported: \(legacyWeightsFileName) is a PyTorch pickle; "
                    + "convert it to safetensors (load it in PEFT and save_pretrained(..., safe_serialization=True))")
            }
            throw FileFormatError(path: weightsURL.path, "missing \(weightsFileName)")
        }
        let config = try readJSONObject(at: configURL)
        let tensors = try SafetensorsFile(contentsOf: weightsURL).allTensors()
        return (config, tensors)
    }

    /// Writes an adapter as `save_pretrained` does: into `folder(for: adapterName, in: directory)` (created if
    /// needed), `adapter_model.safetensors` (tensors stored as `dtype`, metadata `{"format": "pt"}`) then
    /// `adapter_config.json` (Python style). Each file is replaced atomically. Returns the folder written.
    @discardableResult
    public static func write(config: JSONValue, tensors: [String: Tensor], to directory: URL,
                             adapterName: String = defaultAdapterName, dtype: SafetensorsDType = .F32) throws -> URL {
        guard case .object = config else {
            throw FileFormatError(path: directory.path, "adapter config must be a JSON object, not a \(config.kindName)")
        }
        guard !adapterName.isEmpty, !adapterName.contains("/"), adapterName != ".", adapterName != ".." else {
            throw FileFormatError(path: directory.path, "invalid adapter name \"\(adapterName)\"")
        }
        let folder = folder(for: adapterName, in: directory)
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw FileFormatError(path: folder.path, "cannot create the adapter folder (\(error.localizedDescription))")
        }
        try Safetensors.write(tensors, metadata: ["format": "pt"], dtype: dtype,
                              to: folder.appendingPathComponent(weightsFileName))
        try AtomicFile.write(config.pythonStyleString(indent: 2, sortKeys: true),
                             to: folder.appendingPathComponent(configFileName))
        return folder
    }

    /// The config file `name` of the adapter folder `directory`, after checking that both exist (errors say the
    /// folder is not `what`).
    package static func configFile(in directory: URL, named name: String, of what: String) throws -> URL {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FileFormatError(path: directory.path, "adapter folder does not exist")
        }
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FileFormatError(path: url.path, "missing \(name): not \(what)")
        }
        return url
    }

    /// Reads a JSON file (written by Python, so `NaN`/`Infinity` are accepted) that must hold an object, with errors
    /// naming the file.
    package static func readJSONObject(at url: URL) throws -> JSONValue {
        let data = try FileContents.read(url)
        let value: JSONValue
        do { value = try JSONValue(parsing: data, allowNonFinite: true) } catch let e as JSONError {
            throw FileFormatError(path: url.path, "invalid JSON: \(e)")
        }
        guard case .object = value else { throw FileFormatError(path: url.path, "expected a JSON object, found \(value.kindName)") }
        return value
    }
}
