import Foundation
import PolyPEFTCore

/// A JSON document as a value: what `JSONParser` reads and the writers (`pythonStyleString`, `compactString`) emit.
///
/// Integers and floating-point numbers are kept apart, as Python's `json` module keeps `int` and `float` apart:
/// `1` parses to `.int(1)` and prints back as `1`, while `1.0` parses to `.double(1.0)` and prints back as `1.0`.
/// Objects are dictionaries (the parser rejects duplicate keys, so nothing is lost); writers sort their keys.
public enum JSONValue: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses strict RFC 8259 JSON from UTF-8 bytes (see `JSONParser` for the rules), throwing `JSONError`.
    /// `allowNonFinite` also accepts Python's `NaN`, `Infinity` and `-Infinity`.
    public init(parsing data: Data, allowNonFinite: Bool = false) throws {
        self = try JSONParser.parse(data, allowNonFinite: allowNonFinite)
    }

    /// Parses strict RFC 8259 JSON from a string, throwing `JSONError`.
    public init(parsing text: String, allowNonFinite: Bool = false) throws {
        self = try JSONParser.parse(bytes: Array(text.utf8), allowNonFinite: allowNonFinite)
    }

    /// The member `key` of an object, or nil (also nil when `self` is not an object).
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The string payload, or nil.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The integer payload, or nil (a `.double` is not an integer, even `2.0`).
    public var intValue: Int? { if case .int(let i) = self { return i }; return nil }
    /// The number as a `Double` (`.int` or `.double`), or nil.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    /// The Boolean payload, or nil.
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// The elements of an array, or nil.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    /// The members of an object, or nil.
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    /// True for `.null`.
    public var isNull: Bool { self == .null }

    /// A short name of the kind of value, for error messages: `"string"`, `"array"`, ...
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Builds an object; a repeated key is a programmer error.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, _ in preconditionFailure("JSONValue: duplicate key in literal") }))
    }
}
