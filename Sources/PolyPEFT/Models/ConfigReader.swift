import Foundation

/// Typed access to a Hugging Face `config.json` object: required keys throw a `ModelError` naming the key and the
/// model type when missing or of the wrong kind; unknown keys are ignored.
struct ConfigReader {
    let object: [String: JSONValue]
    let modelType: String

    init(_ json: JSONValue, modelType: String) throws {
        guard let o = json.objectValue else {
            throw ModelError("\(modelType) config: expected a JSON object, got \(json.kindName)")
        }
        object = o
        self.modelType = modelType
    }

    init(data: Data, modelType: String) throws {
        let json: JSONValue
        do { json = try JSONValue(parsing: data) } catch {
            throw ModelError("\(modelType) config: invalid JSON: \(error)")
        }
        try self.init(json, modelType: modelType)
    }

    private func present(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String) throws -> Int {
        guard let v = present(key) else { throw ModelError("\(modelType) config: missing required key '\(key)'") }
        return try int(key, v)
    }

    func int(_ key: String, default d: Int?) throws -> Int? {
        guard let v = present(key) else { return d }
        return try int(key, v)
    }

    private func int(_ key: String, _ v: JSONValue) throws -> Int {
        if let i = v.intValue { return i }
        if let d = v.doubleValue, d == d.rounded(), Swift.abs(d) < 1e15 { return Int(d) }
        throw ModelError("\(modelType) config: '\(key)' must be an integer, got \(v.kindName)")
    }

    func positiveInt(_ key: String) throws -> Int {
        let i = try int(key)
        guard i > 0 else { throw ModelError("\(modelType) config: '\(key)' must be positive, got \(i)") }
        return i
    }

    func double(_ key: String, default d: Double) throws -> Double {
        guard let v = present(key) else { return d }
        guard let x = v.doubleValue else {
            throw ModelError("\(modelType) config: '\(key)' must be a number, got \(v.kindName)")
        }
        return x
    }

    func bool(_ key: String, default d: Bool?) throws -> Bool? {
        guard let v = present(key) else { return d }
        guard let b = v.boolValue else { throw ModelError("\(modelType) config: '\(key)' must be a boolean, got \(v.kindName)") }
        return b
    }

    func string(_ key: String, default d: String) throws -> String {
        guard let v = present(key) else { return d }
        guard let s = v.stringValue else { throw ModelError("\(modelType) config: '\(key)' must be a string, got \(v.kindName)") }
        return s
    }

    /// A probability in [0, 1).
    func probability(_ key: String, default d: Double) throws -> Float {
        let p = try double(key, default: d)
        guard p >= 0 && p < 1 else { throw ModelError("\(modelType) config: '\(key)' must be in [0, 1), got \(p)") }
        return Float(p)
    }
}
