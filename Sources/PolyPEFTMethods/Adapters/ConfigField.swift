import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// One JSON key of a configuration, spelled once: how it is read into the config, written back, and known (so that
/// every other key is reported as unknown). A config type lists its fields in one table (`PeftConfig.fields`), which
/// drives decoding, encoding and unknown-key reporting alike.
///
/// Reading starts from the config's defaults (`init()`): a key that is absent or `null` keeps its default value.
public struct ConfigField<Config> {
    /// The JSON key (`lora_alpha`).
    public let key: String
    let read: (JSONObjectReader, inout Config) throws -> Void
    /// The value to write, or nil to leave the key out (extension keys at their default).
    let write: (Config) -> JSONValue?

    init(_ key: String, read: @escaping (JSONObjectReader, inout Config) throws -> Void,
         write: @escaping (Config) -> JSONValue?) {
        self.key = key
        self.read = read
        self.write = write
    }

    /// The same field on a config that holds this one at `path` (the common fields inside a method's config).
    func lifted<Outer>(_ path: WritableKeyPath<Outer, Config>) -> ConfigField<Outer> {
        ConfigField<Outer>(key, read: { r, c in try self.read(r, &c[keyPath: path]) },
                           write: { c in self.write(c[keyPath: path]) })
    }
}

extension ConfigField {
    /// An integer (`r`, `n_tasks`).
    static func int(_ key: String, _ p: WritableKeyPath<Config, Int>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.int(key, default: c[keyPath: p]) },
                    write: { .int($0[keyPath: p]) })
    }

    /// An integer or `null` (prompt learning's sizes, filled in from the model when null).
    static func optionalInt(_ key: String, _ p: WritableKeyPath<Config, Int?>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.int(key, default: c[keyPath: p]) },
                    write: { $0[keyPath: p].map { .int($0) } ?? .null })
    }

    /// A number written as an integer when it is one (`lora_alpha`: PEFT writes what the user gave, usually `16`).
    static func number(_ key: String, _ p: WritableKeyPath<Config, Double>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.double(key, default: c[keyPath: p]) },
                    write: { JSONValue.number($0[keyPath: p]) })
    }

    /// A floating-point number, always written as one (`lora_dropout: 0.0`).
    static func double(_ key: String, _ p: WritableKeyPath<Config, Double>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.double(key, default: c[keyPath: p]) },
                    write: { .double($0[keyPath: p]) })
    }

    static func bool(_ key: String, _ p: WritableKeyPath<Config, Bool>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.bool(key, default: c[keyPath: p]) },
                    write: { .bool($0[keyPath: p]) })
    }

    static func string(_ key: String, _ p: WritableKeyPath<Config, String>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.string(key, default: c[keyPath: p]) },
                    write: { .string($0[keyPath: p]) })
    }

    /// A string or `null`.
    static func optionalString(_ key: String, _ p: WritableKeyPath<Config, String?>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.string(key) },
                    write: { $0[keyPath: p].map { .string($0) } ?? .null })
    }

    /// A list of layer indices (`leave_out`): non-negative integers; null or absent keeps the default.
    static func layerIndices(_ key: String, _ p: WritableKeyPath<Config, [Int]>) -> ConfigField {
        ConfigField(key, read: { r, c in
            guard let v = r.present(key), v != .null else { return }
            guard let a = v.arrayValue else { throw r.fail(key, "a list of layer indices", v) }
            c[keyPath: p] = try a.map { x in
                guard let i = x.intValue, i >= 0 else { throw r.fail(key, "non-negative layer indices", x) }
                return i
            }
        }, write: { c in .array(c[keyPath: p].map { .int($0) }) })
    }

    /// A list of strings or `null`.
    static func strings(_ key: String, _ p: WritableKeyPath<Config, [String]?>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.strings(key) },
                    write: { $0[keyPath: p].map { .array($0.map { .string($0) }) } ?? .null })
    }

    /// Any JSON value, kept verbatim (`auto_mapping`).
    static func raw(_ key: String, _ p: WritableKeyPath<Config, JSONValue?>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = r.present(key) }, write: { $0[keyPath: p] ?? .null })
    }

    /// `target_modules`-like: a regex string, a list of module names, or `null`.
    static func targets(_ key: String, _ p: WritableKeyPath<Config, TargetModules?>) -> ConfigField {
        ConfigField(key, read: { r, c in c[keyPath: p] = try r.targets(key) },
                    write: { $0[keyPath: p]?.json ?? .null })
    }

    /// A string-valued enumeration (`"parameters"` / `"outputs"`); an unknown value is an error listing the valid ones.
    static func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ p: WritableKeyPath<Config, E>,
                                                          omitWhenDefault: E? = nil) -> ConfigField where E.RawValue == String {
        ConfigField(key, read: { r, c in
            guard let s = try r.string(key) else { return }
            guard let v = E(rawValue: s) else {
                throw ConfigError("\(r.context): '\(key)' must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(s)\"")
            }
            c[keyPath: p] = v
        }, write: { c in
            let v = c[keyPath: p]
            if let d = omitWhenDefault, v.rawValue == d.rawValue { return nil }
            return .string(v.rawValue)
        })
    }
}

extension JSONValue {
    /// `.int` when `x` is a whole number of moderate size, else `.double` (Python writes `16` for `lora_alpha=16`).
    static func number(_ x: Double) -> JSONValue {
        x == x.rounded() && Swift.abs(x) < 1e15 ? .int(Int(x)) : .double(x)
    }
}
