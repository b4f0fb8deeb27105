import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

extension MultitaskDataFile {
    /// One JSONL sample as decoded (widths and ranges are checked by the builder and `parseJSONL`). Numbers are
    /// decoded as `Double` so values beyond the `Float` range get a precise message.
    private struct Row: Decodable {
        let input: [Double]
        let target: [Double]
        let task: String

        enum CodingKeys: String, CodingKey { case input, target, task }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            input = try c.decode([Double].self, forKey: .input)
            target = try c.decode([Double].self, forKey: .target)
            // A task may be a string or an integer (written as its decimal name).
            if let s = try? c.decode(String.self, forKey: .task) {
                task = s
            } else if let i = try? c.decode(Int.self, forKey: .task) {
                task = String(i)
            } else {
                _ = try c.decode(String.self, forKey: .task) // rethrows the precise missing-key / type error
                task = ""
            }
        }
    }

    /// Calls `body` with each line of JSONL text that is not blank (its bytes, without the `\r` of a CRLF) and its
    /// 1-based number.
    public static func forEachJSONLLine(_ text: String, _ body: (_ line: Int, _ bytes: Data) throws -> Void) rethrows {
        var lineNumber = 0
        // Split bytes, not Characters: "\r\n" is one Character and would hide the line break.
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            try body(lineNumber, Data(line))
        }
    }

    /// Parses JSONL text line by line (blank lines skipped) into `builder`.
    static func parseJSONL(_ text: String, into builder: inout Builder) throws {
        let decoder = JSONDecoder()
        try forEachJSONLLine(text) { lineNumber, line in
            // The strict parser first: it refuses what Foundation's decoder lets through (trailing commas, duplicate
            // keys), with the byte where the problem is.
            do { _ = try JSONValue(parsing: line) } catch let e as JSONError {
                throw builder.error(lineNumber, "not valid JSON (\(e))")
            }
            let row: Row
            do {
                row = try decoder.decode(Row.self, from: line)
            } catch let e as DecodingError {
                throw builder.error(lineNumber, describe(e))
            }
            for (name, values) in [("input", row.input), ("target", row.target)] {
                if let j = values.firstIndex(where: { !Float($0).isFinite }) {
                    throw builder.error(lineNumber, "\"\(name)\"[\(j)] is \(values[j]), outside the Float range")
                }
            }
            try builder.add(input: row.input.map { Float($0) }, target: row.target.map { Float($0) }, task: row.task, line: lineNumber)
        }
    }

    /// A one-line description of a decoding error, naming the key path (`"input"[3] is not a number`).
    private static func describe(_ error: DecodingError) -> String {
        func path(_ p: [any CodingKey]) -> String {
            p.map { k in k.intValue.map { "[\($0)]" } ?? "\"\(k.stringValue)\"" }.joined()
        }
        switch error {
        case let .keyNotFound(key, _):
            return "missing key \"\(key.stringValue)\""
        case let .typeMismatch(type, ctx):
            if ctx.codingPath.isEmpty { return "expected a JSON object" }
            let p = path(ctx.codingPath)
            if type == Double.self { return "\(p) is not a number" }
            if ctx.codingPath.count == 1 && ctx.codingPath[0].stringValue == "task" { return "\"task\" must be a string" }
            if ctx.codingPath.count == 1 { return "\(p) must be an array of numbers" }
            return "\(p) has the wrong type"
        case let .valueNotFound(_, ctx):
            return "\(path(ctx.codingPath)) is null"
        case let .dataCorrupted(ctx):
            if ctx.codingPath.isEmpty { return "not valid JSON (or a number out of range)" }
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "cannot decode: \(error)"
        }
    }
}
