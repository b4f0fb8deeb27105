import Foundation
import PolyPEFTCore

/// A Hugging Face model folder at the level of files: `config.json` (as `JSONValue`) and the weights, either one
/// `model.safetensors` or shards listed by `model.safetensors.index.json`:
///
/// ```
/// {"metadata": {"total_size": 123}, "weight_map": {"<tensor name>": "model-00001-of-00002.safetensors", ...}}
/// ```
/// Shards are loaded one at a time and only the tensors the index maps to each shard are kept.
public enum HFModelFolder {
    public static let configFileName = "config.json"
    public static let weightsFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"
    /// The legacy pickle format, which we refuse to read.
    public static let legacyWeightsFileName = "pytorch_model.bin"

    /// Reads `config.json` and all weights (floating dtypes as `Float`; integer tensors throw unless
    /// `convertingIntegers`).
    public static func read(from directory: URL, convertingIntegers: Bool = false) throws
        -> (config: JSONValue, tensors: [String: Tensor]) {
        let configURL = directory.appendingPathComponent(configFileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw FileFormatError(path: configURL.path, "missing \(configFileName): not a Hugging Face model folder")
        }
        let config = try PeftAdapterFolder.readJSONObject(at: configURL)
        return (config, try readWeights(from: directory, convertingIntegers: convertingIntegers))
    }

    /// Reads the weights of a model folder: `model.safetensors` if present, else the shards of
    /// `model.safetensors.index.json`.
    public static func readWeights(from directory: URL, convertingIntegers: Bool = false) throws -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        try forEachTensor(in: directory) { file, name in
            tensors[name] = try file.tensor(name, convertingIntegers: convertingIntegers)
        }
        return tensors
    }

    /// A checkpoint as published: its parameters as `Float` (F64, F16 and BF16 converted) and, apart, the tensors
    /// `isBuffer` names (non-parameter buffers such as BERT's `embeddings.position_ids`, integer or not), as integers.
    /// An integer tensor that is not a buffer throws, naming it; a buffer holding a non-integral value too.
    public static func readCheckpoint(from directory: URL, buffers isBuffer: (String) -> Bool) throws
        -> (config: JSONValue, parameters: [String: Tensor], buffers: [String: (values: [Int], shape: [Int])]) {
        let configURL = directory.appendingPathComponent(configFileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw FileFormatError(path: configURL.path, "missing \(configFileName): not a Hugging Face model folder")
        }
        let config = try PeftAdapterFolder.readJSONObject(at: configURL)
        var parameters: [String: Tensor] = [:]
        var buffers: [String: (values: [Int], shape: [Int])] = [:]
        try forEachTensor(in: directory) { file, name in
            guard isBuffer(name) else { parameters[name] = try file.tensor(name); return }
            if try file.info(name).dtype.isFloatingPoint {
                let t = try file.tensor(name)
                guard let bad = t.scalars.first(where: { $0.rounded() != $0 || abs($0) > 16_777_216 }) else {
                    buffers[name] = (t.scalars.map { Int($0) }, t.shape)
                    return
                }
                throw FileFormatError(path: file.name, "buffer \"\(name)\" holds \(bad), not an integer index")
            }
            buffers[name] = try file.intTensor(name)
        }
        return (config, parameters, buffers)
    }

    /// Calls `body` with each tensor name of the folder's weights and the file holding it: `model.safetensors`, or
    /// the shards of the index one at a time (only the names the index maps to each shard).
    static func forEachTensor(in directory: URL, _ body: (SafetensorsFile, String) throws -> Void) throws {
        let fm = FileManager.default
        let single = directory.appendingPathComponent(weightsFileName)
        if fm.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(contentsOf: single)
            for name in file.keys { try body(file, name) }
            return
        }
        let indexURL = directory.appendingPathComponent(indexFileName)
        guard fm.fileExists(atPath: indexURL.path) else {
            if fm.fileExists(atPath: directory.appendingPathComponent(legacyWeightsFileName).path) {
                throw FileFormatError(path: directory.appendingPathComponent(legacyWeightsFileName).path,
                                      "not supported: \(legacyWeightsFileName) is a PyTorch pickle; convert it to safetensors")
            }
            throw FileFormatError(path: directory.path, "no \(weightsFileName) or \(indexFileName) in the folder")
        }
        let weightMap = try readIndex(at: indexURL)
        var byShard: [String: [String]] = [:]
        for (name, shard) in weightMap { byShard[shard, default: []].append(name) }
        for shard in byShard.keys.sorted() {
            let shardURL = directory.appendingPathComponent(shard)
            guard fm.fileExists(atPath: shardURL.path) else {
                throw FileFormatError(path: shardURL.path, "shard listed in \(indexFileName) is missing")
            }
            let file = try SafetensorsFile(contentsOf: shardURL)
            for name in byShard[shard]!.sorted() {
                guard file.contains(name) else {
                    throw FileFormatError(path: shardURL.path, "\(indexFileName) maps tensor \"\(name)\" to this shard but it does not contain it")
                }
                try body(file, name)
            }
        }
    }

    /// Parses the index's `weight_map`; shard names must be plain file names (no path separators), so an index
    /// cannot make us read outside the folder.
    static func readIndex(at url: URL) throws -> [String: String] {
        let index = try PeftAdapterFolder.readJSONObject(at: url)
        guard let map = index["weight_map"]?.objectValue else {
            throw FileFormatError(path: url.path, "missing \"weight_map\" object")
        }
        var result: [String: String] = [:]
        for name in map.keys.sorted() {
            guard let shard = map[name]!.stringValue else {
                throw FileFormatError(path: url.path, "weight_map entry for \"\(name)\" is a \(map[name]!.kindName), not a file name")
            }
            guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
                throw FileFormatError(path: url.path, "weight_map entry for \"\(name)\" names \"\(shard)\", not a file in the folder")
            }
            result[name] = shard
        }
        return result
    }

    /// Writes `config.json` and the weights (stored as `dtype`). With `maxShardBytes`, tensors are packed in sorted
    /// name order into shards `model-0000i-of-0000n.safetensors` of at most that many data bytes (a larger tensor
    /// gets a shard of its own) plus `model.safetensors.index.json` (`metadata.total_size` = sum of data bytes);
    /// otherwise into one `model.safetensors`. Every file is written atomically; metadata `{"format": "pt"}`.
    public static func write(config: JSONValue, tensors: [String: Tensor], to directory: URL,
                             dtype: SafetensorsDType = .F32, maxShardBytes: Int? = nil) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let meta = ["format": "pt"]
        if let limit = maxShardBytes {
            var shards: [[String]] = [[]]
            var used = 0
            var total = 0
            for name in tensors.keys.sorted() {
                let bytes = tensors[name]!.count * dtype.byteSize
                if used + bytes > limit && !shards[shards.count - 1].isEmpty { shards.append([]); used = 0 }
                shards[shards.count - 1].append(name)
                used += bytes
                total += bytes
            }
            var weightMap: [String: JSONValue] = [:]
            for (i, names) in shards.enumerated() {
                let file = String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
                var part: [String: Tensor] = [:]
                for name in names { part[name] = tensors[name]; weightMap[name] = .string(file) }
                try Safetensors.write(part, metadata: meta, dtype: dtype, to: directory.appendingPathComponent(file))
            }
            let index: JSONValue = ["metadata": ["total_size": .int(total)], "weight_map": .object(weightMap)]
            try AtomicFile.write(index.pythonStyleString(indent: 2) + "\n", to: directory.appendingPathComponent(indexFileName))
        } else {
            try Safetensors.write(tensors, metadata: meta, dtype: dtype, to: directory.appendingPathComponent(weightsFileName))
        }
        try AtomicFile.write(config.pythonStyleString(indent: 2) + "\n", to: directory.appendingPathComponent(configFileName))
    }
}
