import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A library of separately trained LoRA adapters for one base model (what Arrow, MBC and learned routers route over):
/// PEFT LoRA folders, checked against each other when added, their weights read only when asked for.
///
/// ```
/// <library>/library.json            {"format": 1, "adapters": [{"name", "path", "metadata", "data_size"}, ...]}
/// <library>/<path>/adapter_config.json, adapter_model.safetensors      one PEFT folder per adapter
/// ```
/// Every adapter is plain LoRA (`LORA`, no DoRA, no trained biases) on the same modules, each module with the same
/// input and output widths in every adapter; ranks and alphas may differ. Names are unique and usable as folder names.
public struct AdapterLibrary {
    public static let indexFileName = "library.json"

    /// One adapter of the library.
    public struct Entry {
        public let name: String
        /// The PEFT folder it is read from.
        public let directory: URL
        public let config: LoraConfig
        /// Each adapted module's widths and rank, by module path (`encoder.layer.0.attention.self.query`).
        public let modules: [String: (inFeatures: Int, outFeatures: Int, rank: Int)]
        /// Free-form facts about the adapter (task, source), kept in the index.
        public var metadata: [String: JSONValue]
        /// Training examples the adapter saw, if known.
        public var dataSize: Int?

        /// The scaling of the update at `path`: `alpha / r`, or `alpha / sqrt(r)` with `use_rslora`.
        public func scaling(at path: String) throws -> Float {
            let (r, alpha) = try config.rankAndAlpha(for: path)
            return Float(config.useRslora ? alpha / Double(r).squareRoot() : alpha / Double(r))
        }
    }

    /// A module's LoRA factors: `A` `[r, in]`, `B` `[out, r]`.
    public typealias Factors = (a: Tensor, b: Tensor)

    public private(set) var entries: [Entry] = []

    public init() {}

    /// The adapted module paths, sorted (the same for every entry).
    public var modulePaths: [String] { entries.first.map { $0.modules.keys.sorted() } ?? [] }

    public var names: [String] { entries.map(\.name) }

    /// The entry called `name`, or an error naming the library's adapters.
    public func entry(_ name: String) throws -> Entry {
        guard let e = entries.first(where: { $0.name == name }) else {
            throw ConfigError("the adapter library has no adapter '\(name)' (it has: \(names.joined(separator: ", ")))")
        }
        return e
    }

    /// Adds the PEFT LoRA folder `directory` as `name`, after checking it against the adapters already here.
    public mutating func add(name: String, directory: URL, metadata: [String: JSONValue] = [:], dataSize: Int? = nil) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.hasPrefix(".") else {
            throw ConfigError("adapter name \"\(name)\" cannot name a folder of the library")
        }
        guard !entries.contains(where: { $0.name == name }) else { throw ConfigError("the adapter library already has '\(name)'") }
        if let n = dataSize, n < 0 { throw ConfigError("\(name): data_size must be >= 0, got \(n)") }
        let configURL = try PeftAdapterFolder.configFile(in: directory, named: PeftAdapterFolder.configFileName, of: "a PEFT adapter folder")
        let json = try PeftAdapterFolder.readJSONObject(at: configURL)
        guard let config = try PeftMethods.config(json: json, context: configURL.path) as? LoraConfig else {
            throw ConfigError("\(configURL.path): peft_type is \(json["peft_type"]?.compactString() ?? "absent"); a library holds LoRA adapters")
        }
        guard !config.useDora else { throw ConfigError("\(configURL.path): use_dora: a library holds plain LoRA adapters") }
        let weightsURL = directory.appendingPathComponent(PeftAdapterFolder.weightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw FileFormatError(path: weightsURL.path, "missing \(PeftAdapterFolder.weightsFileName)")
        }
        let file = try SafetensorsFile(contentsOf: weightsURL)
        var modules: [String: (inFeatures: Int, outFeatures: Int, rank: Int)] = [:]
        for key in file.keys {
            guard key.hasPrefix(PeftModel.keyPrefix), key.hasSuffix(".lora_A.weight") || key.hasSuffix(".lora_B.weight") else {
                throw FileFormatError(path: weightsURL.path, "unexpected tensor '\(key)': a library adapter holds lora_A and lora_B only")
            }
            guard key.hasSuffix(".lora_A.weight") else { continue }
            let path = String(key.dropFirst(PeftModel.keyPrefix.count).dropLast(".lora_A.weight".count))
            let bKey = PeftModel.keyPrefix + path + ".lora_B.weight"
            guard file.contains(bKey) else { throw FileFormatError(path: weightsURL.path, "'\(key)' has no '\(bKey)'") }
            let a = try file.info(key).shape, b = try file.info(bKey).shape
            guard a.count == 2, b.count == 2, a[0] == b[1], a[0] > 0 else {
                throw FileFormatError(path: weightsURL.path, "'\(path)': lora_A \(fmt(a)) and lora_B \(fmt(b)) are not [r, in] and [out, r]")
            }
            let (r, _) = try config.rankAndAlpha(for: path)
            guard r == a[0] else { throw FileFormatError(path: weightsURL.path, "'\(path)' has rank \(a[0]), its config says \(r)") }
            modules[path] = (a[1], b[0], a[0])
        }
        guard !modules.isEmpty else { throw FileFormatError(path: weightsURL.path, "no LoRA factors") }
        if let first = entries.first {
            let mine = Set(modules.keys), theirs = Set(first.modules.keys)
            if let p = mine.symmetricDifference(theirs).sorted().first {
                throw ConfigError("\(name): adapts \(mine.contains(p) ? "" : "not ")'\(p)', which '\(first.name)' "
                    + "\(theirs.contains(p) ? "adapts" : "does not"); a library's adapters adapt the same modules")
            }
            for (p, m) in modules where first.modules[p]!.inFeatures != m.inFeatures || first.modules[p]!.outFeatures != m.outFeatures {
                let o = first.modules[p]!
                throw ConfigError("\(name): '\(p)' is \(m.inFeatures) -> \(m.outFeatures), in '\(first.name)' \(o.inFeatures) -> \(o.outFeatures)")
            }
            if let b = config.baseModelNameOrPath, let o = entries.compactMap({ e in e.config.baseModelNameOrPath.map { (e.name, $0) } }).first, o.1 != b {
                throw ConfigError("\(name): base model '\(b)', '\(o.0)' was trained on '\(o.1)'")
            }
        }
        entries.append(Entry(name: name, directory: directory, config: config, modules: modules, metadata: metadata, dataSize: dataSize))
    }

    /// The LoRA factors of adapter `name`, by module path, read from its folder now (NaN or infinite values are an
    /// error naming the tensor).
    public func factors(_ name: String) throws -> [String: Factors] {
        let e = try entry(name)
        let url = e.directory.appendingPathComponent(PeftAdapterFolder.weightsFileName)
        let file = try SafetensorsFile(contentsOf: url)
        var out: [String: Factors] = [:]
        for (path, m) in e.modules {
            let aKey = PeftModel.keyPrefix + path + ".lora_A.weight", bKey = PeftModel.keyPrefix + path + ".lora_B.weight"
            let a = try file.tensor(aKey), b = try file.tensor(bKey)
            guard a.shape == [m.rank, m.inFeatures], b.shape == [m.outFeatures, m.rank] else {
                throw FileFormatError(path: url.path, "'\(path)' changed since the adapter was added to the library")
            }
            try NonFiniteWeightsError.check(a, key: aKey, source: url.path)
            try NonFiniteWeightsError.check(b, key: bKey, source: url.path)
            out[path] = (a, b)
        }
        return out
    }

    /// Opens a library folder (`library.json` and the folders it lists).
    public static func open(_ directory: URL) throws -> AdapterLibrary {
        let url = directory.appendingPathComponent(indexFileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FileFormatError(path: url.path, "missing \(indexFileName): not an adapter library")
        }
        let index = try PeftAdapterFolder.readJSONObject(at: url)
        guard index["format"] == 1 else {
            throw FileFormatError(path: url.path, "format is \(index["format"]?.compactString() ?? "absent"), this reader knows 1")
        }
        guard let list = index["adapters"]?.arrayValue else { throw FileFormatError(path: url.path, "'adapters' must be a list") }
        var library = AdapterLibrary()
        for (i, item) in list.enumerated() {
            guard let name = item["name"]?.stringValue, let path = item["path"]?.stringValue else {
                throw FileFormatError(path: url.path, "adapters[\(i)] needs a string 'name' and 'path'")
            }
            guard !path.isEmpty, !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
                throw FileFormatError(path: url.path, "adapters[\(i)].path '\(path)' must be a folder inside the library")
            }
            var size: Int?
            if let v = item["data_size"], v != .null {
                guard let n = v.intValue else { throw FileFormatError(path: url.path, "adapters[\(i)].data_size must be an integer") }
                size = n
            }
            do {
                try library.add(name: name, directory: directory.appendingPathComponent(path), metadata: item["metadata"]?.objectValue ?? [:],
                                dataSize: size)
            } catch {
                throw FileFormatError(path: url.path, "adapters[\(i)] ('\(name)'): \(error)")
            }
        }
        return library
    }

    /// Writes the library to `directory`: each adapter's PEFT folder (copied, each file atomically) under its name,
    /// then `library.json`.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var list: [JSONValue] = []
        for e in entries {
            let dest = directory.appendingPathComponent(e.name, isDirectory: true)
            if dest.standardizedFileURL != e.directory.standardizedFileURL {
                try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
                for file in [PeftAdapterFolder.configFileName, PeftAdapterFolder.weightsFileName] {
                    try AtomicFile.write(try FileContents.read(e.directory.appendingPathComponent(file)), to: dest.appendingPathComponent(file))
                }
            }
            var item: [String: JSONValue] = ["name": .string(e.name), "path": .string(e.name)]
            if !e.metadata.isEmpty { item["metadata"] = .object(e.metadata) }
            if let n = e.dataSize { item["data_size"] = .int(n) }
            list.append(.object(item))
        }
        let index: JSONValue = ["format": 1, "adapters": .array(list)]
        try AtomicFile.write(index.pythonStyleString(indent: 2, sortKeys: true), to: directory.appendingPathComponent(Self.indexFileName))
    }
}
