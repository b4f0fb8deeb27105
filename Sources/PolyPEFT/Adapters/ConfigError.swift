/// A problem in an adapter configuration (a bad value, an unsupported option, a target that matches nothing),
/// naming the key and the value.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reading typed fields from a JSON object with errors that name the key.
struct JSONFields {
    let object: [String: JSONValue]
    let context: String

    init(_ json: JSONValue, context: String) throws {
        guard let o = json.objectValue else { throw ConfigError("\(context): expected a JSON object, got \(json.kindName)") }
        object = o
        self.context = context
    }

    func present(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String, default d: Int) throws -> Int {
        guard let v = present(key) else { return d }
        if let i = v.intValue { return i }
        if case .double(let x) = v, x == x.rounded(), Swift.abs(x) < 1e15 { return Int(x) }
        throw ConfigError("\(context): '\(key)' must be an integer, got \(v.compactString())")
    }

    func double(_ key: String, default d: Double) throws -> Double {
        guard let v = present(key) else { return d }
        guard let x = v.doubleValue else { throw ConfigError("\(context): '\(key)' must be a number, got \(v.compactString())") }
        return x
    }

    func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = present(key) else { return d }
        guard let b = v.boolValue else { throw ConfigError("\(context): '\(key)' must be true or false, got \(v.compactString())") }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.stringValue else { throw ConfigError("\(context): '\(key)' must be a string, got \(v.compactString())") }
        return s
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = present(key) else { return nil }
        guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
            throw ConfigError("\(context): '\(key)' must be a list of strings, got \(v.compactString())")
        }
        return a.compactMap(\.stringValue)
    }

    func targets(_ key: String) throws -> TargetModules? {
        guard let v = present(key) else { return nil }
        if let s = v.stringValue { return .regex(s) }
        if let names = try? strings(key) { return .names(names) }
        throw ConfigError("\(context): '\(key)' must be a regex string or a list of module names, got \(v.compactString())")
    }

    /// Keys not in `known`, kept verbatim.
    func unknown(known: Set<String>) -> [String: JSONValue] { object.filter { !known.contains($0.key) } }
}
