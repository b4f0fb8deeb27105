import Foundation
import PolyPEFT

/// A value in one of polyctl's JSON lines, and the one writer of those lines (progress, validation and summary
/// events, benchmark figures): `JSONField.line` writes an object whose members keep the order given,
///
/// ```
/// {"step": 120, "total": 2000, "loss": 0.0123, "mixing": "outputs", "load": null}
/// ```
///
/// one space after each colon and comma, as Python's `json.dumps` without indent. Keys and strings are escaped by the
/// library's writer (`JSONValue.compactString`: quotes, backslashes and control characters), so a task named `a"b`
/// keeps the line valid; a number that is not finite is written `null`. Documents without an order of their own
/// (`eval --json`, `inspect --json`) are `JSONValue`s written by `pythonStyleString` instead.
enum JSONField {
    /// A string, Boolean, integer or null, written by the library's writer. (Not a `.double`: use `fixed` or
    /// `shortest`, which write `null` where `JSONValue` would write Python's `NaN`.)
    case value(JSONValue)
    /// A number with `digits` decimals (`%.3f`: `12.500`).
    case fixed(Double, digits: Int)
    /// A number in its shortest round-trip form, integral values without a fraction (`0.0123`, `2000`).
    case shortest(Double)
    /// An object whose members keep their order.
    case object([(String, JSONField)])

    static func string(_ s: String) -> JSONField { .value(.string(s)) }
    static func int(_ i: Int) -> JSONField { .value(.int(i)) }
    static func bool(_ b: Bool) -> JSONField { .value(.bool(b)) }
    static let null = JSONField.value(.null)

    /// The JSON text of the value.
    var text: String {
        switch self {
        case .value(let v):
            return v.compactString()
        case .fixed(let v, let digits):
            return v.isFinite ? String(format: "%.\(digits)f", v) : "null"
        case .shortest(let v):
            guard v.isFinite else { return "null" }
            if v == v.rounded(), Swift.abs(v) < 1e15 { return String(Int64(v)) }
            return "\(v)"
        case .object(let members):
            return "{" + members.map { JSONValue.string($0.0).compactString() + ": " + $0.1.text }.joined(separator: ", ") + "}"
        }
    }

    /// One JSON object with `members` in order: the text of every JSON line polyctl prints.
    static func line(_ members: [(String, JSONField)]) -> String { JSONField.object(members).text }
}
