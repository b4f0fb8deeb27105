import Foundation
import PolyPEFTCore

extension JSONValue {
    /// The text Python's `json.dumps(value, indent=indent, sort_keys=sortKeys)` produces (with the default
    /// `ensure_ascii=True`, `allow_nan=True`), which is how PEFT writes `adapter_config.json`:
    ///
    /// ```
    /// {
    ///   "a": [
    ///     1,
    ///     2.5
    ///   ],
    ///   "b": {},
    ///   "c": null
    /// }
    /// ```
    ///
    /// `"key": value` with one space after the colon, one element per line, `[]`/`{}` for empty containers, floats
    /// as Python's `repr` (`1.0`, `1e-06`, `1e+16`), non-ASCII as `\uXXXX` (surrogate pairs above U+FFFF), no
    /// trailing newline. With `indent == nil` the one-line form `{"a": [1, 2.5]}` is produced. With `sortKeys == false`
    /// keys are still sorted (objects are dictionaries and have no other stable order).
    public func pythonStyleString(indent: Int? = 2, sortKeys: Bool = true) -> String {
        var out = ""
        writePython(into: &out, indent: indent, level: 0)
        return out
    }

    /// Compact JSON as Rust's `serde_json::to_string` writes it (the safetensors header): no spaces, sorted keys,
    /// non-ASCII written as raw UTF-8, control characters escaped.
    public func compactString() -> String {
        var out = ""
        writeCompact(into: &out)
        return out
    }

    private func writePython(into out: inout String, indent: Int?, level: Int) {
        func newline(_ level: Int) {
            if let indent { out += "\n" + String(repeating: " ", count: indent * level) }
        }
        let itemSeparator = indent == nil ? ", " : ","
        switch self {
        case .array(let elements):
            if elements.isEmpty { out += "[]"; return }
            out += "["
            for (i, e) in elements.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                e.writePython(into: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out += "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                JSONValue.writeString(key, asciiOnly: true, into: &out)
                out += ": "
                members[key]!.writePython(into: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out += "}"
        case .string(let s):
            JSONValue.writeString(s, asciiOnly: true, into: &out)
        case .double(let d):
            out += JSONValue.pythonRepr(d)
        default:
            writeCompact(into: &out)
        }
    }

    private func writeCompact(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += JSONValue.pythonRepr(d)
        case .string(let s): JSONValue.writeString(s, asciiOnly: false, into: &out)
        case .array(let elements):
            out += "["
            for (i, e) in elements.enumerated() {
                if i > 0 { out += "," }
                e.writeCompact(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(key, asciiOnly: false, into: &out)
                out += ":"
                members[key]!.writeCompact(into: &out)
            }
            out += "}"
        }
    }

    /// Writes a quoted JSON string. `asciiOnly` escapes everything outside printable ASCII as Python's
    /// `ensure_ascii=True` does (lower-case hex, surrogate pairs for scalars above U+FFFF, DEL escaped too).
    static func writeString(_ s: String, asciiOnly: Bool, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                let v = scalar.value
                if v < 0x20 || (asciiOnly && v >= 0x7F) {
                    if v > 0xFFFF {
                        let u = v - 0x10000
                        out += hex4(0xD800 + (u >> 10)) + hex4(0xDC00 + (u & 0x3FF))
                    } else {
                        out += hex4(v)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private static func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }

    /// Python's `repr(float)`: the shortest digits that round-trip, in positional notation when the decimal
    /// exponent `e` (value = 0.d1d2... x 10^e) satisfies -4 < e <= 16, otherwise `d1.d2...e±XX`:
    ///
    /// ```
    /// 1.0 -> "1.0"   0.0001 -> "0.0001"   1e-05 -> "1e-05"   1e16 -> "1e+16"   -0.0 -> "-0.0"   inf -> "Infinity"
    /// ```
    /// Non-finite values print as `json.dumps` prints them: `NaN`, `Infinity`, `-Infinity`.
    public static func pythonRepr(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        let sign = d.sign == .minus ? "-" : ""
        if d == 0 { return sign + "0.0" }
        // Swift's description also gives the shortest round-tripping digits; re-lay them out Python's way.
        let text = Swift.abs(d).description  // "123.45", "1e-05", "1.5e+16", "5e-324"
        let parts = text.split(separator: "e", maxSplits: 1)
        var exponent = parts.count == 2 ? Int(parts[1])! : 0
        let mantissa = parts[0]
        let dot = mantissa.firstIndex(of: ".")
        var digits = String(mantissa.filter { $0 != "." })
        exponent += dot.map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count
        // Normalise: strip leading zeros (each moves the point left) and trailing zeros.
        while digits.hasPrefix("0") { digits.removeFirst(); exponent -= 1 }
        while digits.hasSuffix("0") { digits.removeLast() }
        if exponent <= -4 || exponent > 16 {
            let e = exponent - 1
            let m = digits.count == 1 ? digits : String(digits.first!) + "." + digits.dropFirst()
            let ePart = String(Swift.abs(e))
            return sign + m + "e" + (e < 0 ? "-" : "+") + (ePart.count < 2 ? "0" : "") + ePart
        }
        if exponent <= 0 { return sign + "0." + String(repeating: "0", count: -exponent) + digits }
        if exponent >= digits.count { return sign + digits + String(repeating: "0", count: exponent - digits.count) + ".0" }
        let cut = digits.index(digits.startIndex, offsetBy: exponent)
        return sign + digits[..<cut] + "." + digits[cut...]
    }
}
