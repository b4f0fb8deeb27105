import Foundation
import PolyPEFTCore

/// Typed fields of a JSON object (an `adapter_config.json`, a Hugging Face `config.json`), with errors that start
/// with `context` and name the key: `t5 config: 'd_model' must be an integer, got "x"`. `null` counts as absent.
package struct JSONObjectReader {
    package let object: [String: JSONValue]
    package let context: String

    package init(_ json: JSONValue, context: String) throws {
        guard let o = json.objectValue else { throw ConfigError("\(context): expected a JSON object, got \(json.kindName)") }
        object = o
        self.context = context
    }

    package init(data: Data, context: String) throws {
        let json: JSONValue
        do { json = try JSONValue(parsing: data, allowNonFinite: true) } catch {
            throw ConfigError("\(context): invalid JSON: \(error)")
        }
        try self.init(json, context: context)
    }

    package func present(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    package func fail(_ key: String, _ expected: String, _ v: JSONValue) -> ConfigError {
        ConfigError("\(context): '\(key)' must be \(expected), got \(v.compactString())")
    }

    package func int(_ key: String, default d: Int?) throws -> Int? {
        guard let v = present(key) else { return d }
        if let i = v.intValue { return i }
        if case .double(let x) = v, x == x.rounded(), Swift.abs(x) < 1e15 { return Int(x) }
        throw fail(key, "an integer", v)
    }

    package func int(_ key: String, default d: Int) throws -> Int { try int(key, default: Optional(d))! }

    /// A required integer.
    package func int(_ key: String) throws -> Int {
        guard let i = try int(key, default: nil) else { throw ConfigError("\(context): missing required key '\(key)'") }
        return i
    }

    package func positiveInt(_ key: String) throws -> Int {
        let i = try int(key)
        guard i > 0 else { throw ConfigError("\(context): '\(key)' must be positive, got \(i)") }
        return i
    }

    package func double(_ key: String, default d: Double) throws -> Double {
        guard let v = present(key) else { return d }
        guard let x = v.doubleValue else { throw fail(key, "a number", v) }
        return x
    }

    /// A probability in [0, 1).
    package func probability(_ key: String, default d: Double) throws -> Float {
        let p = try double(key, default: d)
        guard p >= 0 && p < 1 else { throw ConfigError("\(context): '\(key)' must be in [0, 1), got \(p)") }
        return Float(p)
    }

    package func bool(_ key: String, default d: Bool?) throws -> Bool? {
        guard let v = present(key) else { return d }
        guard let b = v.boolValue else { throw fail(key, "true or false", v) }
        return b
    }

    package func bool(_ key: String, default d: Bool) throws -> Bool { try bool(key, default: Optional(d))! }

    package func string(_ key: String) throws -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.stringValue else { throw fail(key, "a string", v) }
        return s
    }

    package func string(_ key: String, default d: String) throws -> String { try string(key) ?? d }

    package func strings(_ key: String) throws -> [String]? {
        guard let v = present(key) else { return nil }
        guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else { throw fail(key, "a list of strings", v) }
        return a.compactMap(\.stringValue)
    }

    /// Keys not in `known`, kept verbatim.
    package func unknown(known: Set<String>) -> [String: JSONValue] { object.filter { !known.contains($0.key) } }
}
