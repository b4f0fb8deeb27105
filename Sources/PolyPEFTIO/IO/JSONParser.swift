import Foundation
import PolyPEFTCore

/// A strict RFC 8259 JSON parser over UTF-8 bytes.
///
/// Stricter than Foundation's `JSONSerialization`, because file headers are hostile input:
/// - a key repeated in one object is an error (`JSONSerialization` silently keeps one of them);
/// - the input must be valid UTF-8, strings must not hold raw control characters or lone surrogates;
/// - no comments, trailing commas, leading zeros, or text after the value; `NaN`/`Infinity`/`-Infinity` only when
///   `allowNonFinite` is set (Python's `json` writes and reads them; safetensors headers never hold them);
/// - nesting deeper than `maxDepth` is an error (instead of overflowing the stack).
///
/// Numbers without a fraction or exponent that fit in `Int` become `.int`; all others `.double`.
public enum JSONParser {
    /// Deepest nesting of arrays and objects accepted.
    public static let maxDepth = 256

    /// Parses one JSON value filling all of `data` (surrounding whitespace allowed).
    public static func parse(_ data: Data, allowNonFinite: Bool = false) throws -> JSONValue {
        try parse(bytes: [UInt8](data), allowNonFinite: allowNonFinite)
    }

    /// Parses one JSON value filling all of `bytes`.
    public static func parse(bytes: [UInt8], allowNonFinite: Bool = false) throws -> JSONValue {
        if let bad = firstInvalidUTF8(bytes) { throw JSONError("input is not valid UTF-8", at: bad) }
        var reader = Reader(bytes: bytes, allowNonFinite: allowNonFinite)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.pos == bytes.count else { throw JSONError("unexpected text after the JSON value", at: reader.pos) }
        return value
    }

    /// Parses like `parse(bytes:)`, but the object at `path` (keys from the root, e.g. `["model", "vocab"]`) is
    /// returned apart as its members in file order, with keys compared byte for byte: Swift's `String` equality is
    /// canonical equivalence, so a `[String: JSONValue]` cannot hold two keys such as "ñ" (U+00F1) and "n" + U+0303,
    /// which a tokenizer's vocabulary may both contain. In the returned tree that object is empty. `members` is nil
    /// when there is no object at `path`.
    public static func parse(bytes: [UInt8], capturing path: [String], allowNonFinite: Bool = false) throws
        -> (value: JSONValue, members: [(key: String, value: JSONValue)]?) {
        if let bad = firstInvalidUTF8(bytes) { throw JSONError("input is not valid UTF-8", at: bad) }
        var reader = Reader(bytes: bytes, allowNonFinite: allowNonFinite)
        reader.capturePath = path
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.pos == bytes.count else { throw JSONError("unexpected text after the JSON value", at: reader.pos) }
        return (value, reader.captured)
    }

    /// Offset of the first byte that is not part of a well-formed UTF-8 sequence (no overlong forms, surrogates or
    /// scalars above U+10FFFF), or nil when all of `b` is valid UTF-8.
    public static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
        var i = 0
        while i < b.count {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            let n: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF  // allowed range of the second byte
            switch c {
            case 0xC2...0xDF: n = 1
            case 0xE0: n = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: n = 2
            case 0xED: n = 2; hi = 0x9F
            case 0xF0: n = 3; lo = 0x90
            case 0xF1...0xF3: n = 3
            case 0xF4: n = 3; hi = 0x8F
            default: return i
            }
            guard i + n < b.count, b[i + 1] >= lo, b[i + 1] <= hi else { return i }
            for k in 2..<(n + 1) where b[i + k] & 0xC0 != 0x80 { return i }
            i += n + 1
        }
        return nil
    }

    struct Reader {
        let bytes: [UInt8]
        let allowNonFinite: Bool
        var pos = 0
        /// The key path of the object to capture (`parse(bytes:capturing:)`), the path being parsed (nil: an array
        /// element, so nothing inside an array is on a key path), and the capture.
        var capturePath: [String]?
        var path: [String?] = []
        var captured: [(key: String, value: JSONValue)]?

        mutating func skipWhitespace() {
            while pos < bytes.count, bytes[pos] == 0x20 || bytes[pos] == 0x0A || bytes[pos] == 0x0D || bytes[pos] == 0x09 {
                pos += 1
            }
        }

        func describeHere() -> String {
            guard pos < bytes.count else { return "end of input" }
            let b = bytes[pos]
            return b >= 0x20 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x" + String(b, radix: 16)
        }

        mutating func expect(_ literal: String) throws {
            for b in literal.utf8 {
                guard pos < bytes.count, bytes[pos] == b else { throw JSONError("invalid literal (expected \(literal))", at: pos) }
                pos += 1
            }
        }

        mutating func parseValue(depth: Int) throws -> JSONValue {
            guard pos < bytes.count else { throw JSONError("expected a value but found end of input", at: pos) }
            switch bytes[pos] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "N") where allowNonFinite: try expect("NaN"); return .double(.nan)
            case UInt8(ascii: "I") where allowNonFinite: try expect("Infinity"); return .double(.infinity)
            case UInt8(ascii: "-") where allowNonFinite && pos + 1 < bytes.count && bytes[pos + 1] == UInt8(ascii: "I"):
                try expect("-Infinity"); return .double(-.infinity)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw JSONError("expected a value but found \(describeHere())", at: pos)
            }
        }

        mutating func parseObject(depth: Int) throws -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw JSONError("nesting deeper than \(JSONParser.maxDepth)", at: pos) }
            pos += 1  // {
            var members: [String: JSONValue] = [:]
            // The captured object keeps its members in order, keys compared as bytes.
            let capturing = capturePath != nil && path.count == capturePath!.count
                && zip(path, capturePath!).allSatisfy { key, wanted in key.map { $0.utf8.elementsEqual(wanted.utf8) } ?? false }
            var ordered: [(key: String, value: JSONValue)] = []
            var seen = Set<[UInt8]>()
            if capturing { captured = [] }
            defer { if capturing { captured = ordered } }
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            while true {
                skipWhitespace()
                let keyOffset = pos
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                    throw JSONError("expected a string key but found \(describeHere())", at: pos)
                }
                let key = try parseString()
                skipWhitespace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                    throw JSONError("expected ':' after key \"\(key)\" but found \(describeHere())", at: pos)
                }
                pos += 1
                skipWhitespace()
                path.append(key)
                let value = try parseValue(depth: depth)
                path.removeLast()
                if capturing {
                    guard seen.insert(Array(key.utf8)).inserted else { throw JSONError("duplicate key \"\(key)\"", at: keyOffset) }
                    ordered.append((key, value))
                } else {
                    guard members.updateValue(value, forKey: key) == nil else { throw JSONError("duplicate key \"\(key)\"", at: keyOffset) }
                }
                skipWhitespace()
                guard pos < bytes.count else { throw JSONError("unterminated object", at: pos) }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
                throw JSONError("expected ',' or '}' in object but found \(describeHere())", at: pos)
            }
        }

        mutating func parseArray(depth: Int) throws -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw JSONError("nesting deeper than \(JSONParser.maxDepth)", at: pos) }
            pos += 1  // [
            var elements: [JSONValue] = []
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(elements) }
            path.append(nil)
            defer { path.removeLast() }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth))
                skipWhitespace()
                guard pos < bytes.count else { throw JSONError("unterminated array", at: pos) }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(elements) }
                throw JSONError("expected ',' or ']' in array but found \(describeHere())", at: pos)
            }
        }

        /// Grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        mutating func parseNumber() throws -> JSONValue {
            let start = pos
            func digits() -> Int {
                let s = pos
                while pos < bytes.count, bytes[pos] >= UInt8(ascii: "0"), bytes[pos] <= UInt8(ascii: "9") { pos += 1 }
                return pos - s
            }
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            let intStart = pos
            let n = digits()
            guard n > 0 else { throw JSONError("expected digits in number", at: pos) }
            guard !(n > 1 && bytes[intStart] == UInt8(ascii: "0")) else { throw JSONError("leading zero in number", at: intStart) }
            var isInteger = true
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                pos += 1; isInteger = false
                guard digits() > 0 else { throw JSONError("expected digits after '.' in number", at: pos) }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1; isInteger = false
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits() > 0 else { throw JSONError("expected digits in exponent", at: pos) }
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            if isInteger, let i = Int(text) { return .int(i) }
            guard let d = Double(text), d.isFinite else { throw JSONError("number \(text) is out of range", at: start) }
            return .double(d)
        }

        mutating func parseString() throws -> String {
            let start = pos
            pos += 1  // opening quote
            var out = [UInt8]()
            while true {
                guard pos < bytes.count else { throw JSONError("unterminated string", at: start) }
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") { pos += 1; break }
                if b < 0x20 { throw JSONError("raw control character 0x\(String(b, radix: 16)) in string", at: pos) }
                if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
                pos += 1
                guard pos < bytes.count else { throw JSONError("unterminated string", at: start) }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {  // high surrogate: a low one must follow
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw JSONError("lone surrogate \\u\(String(scalar, radix: 16)) in string", at: pos)
                        }
                        pos += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw JSONError("invalid surrogate pair in string", at: pos) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw JSONError("lone surrogate \\u\(String(scalar, radix: 16)) in string", at: pos)
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default:
                    throw JSONError("invalid escape '\\\(Character(Unicode.Scalar(e)))' in string", at: pos - 1)
                }
            }
            // The input was validated as UTF-8 and escapes produce valid scalars, so this decoding is exact.
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard pos + 4 <= bytes.count else { throw JSONError("truncated \\u escape", at: pos) }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[pos]
                let d: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
                default: throw JSONError("invalid hex digit in \\u escape", at: pos)
                }
                v = v * 16 + UInt32(d)
                pos += 1
            }
            return v
        }
    }
}
