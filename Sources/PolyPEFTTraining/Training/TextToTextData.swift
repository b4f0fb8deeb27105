import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Multitask text-to-text data (T5 style): each sample a task, a source text and a target text, tokenized once.
///
/// JSONL, one object per line (blank lines allowed, other keys ignored); a task may be a string or an integer:
/// ```
/// {"task": "translate", "source": "the red fox", "target": "le renard rouge"}
/// ```
/// Both texts are encoded with the tokenizer's special tokens (T5's `</s>` ends each). Task names become ids in
/// order of first appearance, or follow a given table (an unknown name is then an error naming the line). Texts
/// longer than their limit are truncated or refused, as `longTexts` says; every problem is a `MultitaskDataError`
/// naming the file and line.
public struct TextToTextData: Sendable {
    public struct Sample: Sendable, Equatable {
        public var taskID: Int
        /// Source ids with the tokenizer's special tokens.
        public var sourceIDs: [Int]
        /// Target ids with the tokenizer's special tokens (the labels).
        public var targetIDs: [Int]

        public init(taskID: Int, sourceIDs: [Int], targetIDs: [Int]) {
            self.taskID = taskID
            self.sourceIDs = sourceIDs
            self.targetIDs = targetIDs
        }
    }

    public var taskNames: [String]
    public var samples: [Sample]

    public init(taskNames: [String], samples: [Sample]) {
        self.taskNames = taskNames
        self.samples = samples
    }

    public var count: Int { samples.count }

    public func subset(_ indices: [Int]) -> TextToTextData {
        TextToTextData(taskNames: taskNames, samples: indices.map { samples[$0] })
    }

    /// Reads a JSONL file, encoding sources to at most `maxSourceLength` tokens and targets to `maxTargetLength`.
    public static func read(_ path: String, tokenizer: Tokenizer, maxSourceLength: Int, maxTargetLength: Int,
                            longTexts: TextClassificationData.LongTexts = .truncate,
                            taskNames: [String]? = nil) throws -> TextToTextData {
        let text = try MultitaskDataFile.readText(path)
        var tasks = TextClassificationData.Table(names: taskNames, what: "task")
        var samples: [Sample] = []
        try MultitaskDataFile.forEachJSONLRecord(text, path: path) { record in
            let taskID = try tasks.id(try record.name("task")) { record.fail($0) }
            var ids: [[Int]] = []
            for (key, limit) in [("source", maxSourceLength), ("target", maxTargetLength)] {
                ids.append(try record.encode(key, tokenizer: tokenizer, maxLength: limit, longTexts: longTexts))
            }
            samples.append(Sample(taskID: taskID, sourceIDs: ids[0], targetIDs: ids[1]))
        }
        guard !samples.isEmpty else { throw MultitaskDataError(file: path, "no samples") }
        return TextToTextData(taskNames: tasks.names, samples: samples)
    }
}

/// One line of a JSONL data file, parsed: its object, and errors naming the file and line.
public struct JSONLRecord {
    public let path: String
    public let line: Int
    public let object: [String: JSONValue]

    public func fail(_ message: String) -> MultitaskDataError { MultitaskDataError(file: path, line: line, message) }

    /// A name (task, label): a string or an integer's decimal digits.
    public func name(_ key: String) throws -> String {
        switch object[key] {
        case let .string(s)?: return s
        case let .int(i)?: return String(i)
        case nil: throw fail("missing key \"\(key)\"")
        case let v?: throw fail("\"\(key)\" must be a string or an integer (found \(v.kindName))")
        }
    }

    /// A text.
    public func text(_ key: String) throws -> String {
        guard let body = object[key] else { throw fail("missing key \"\(key)\"") }
        guard let s = body.stringValue else { throw fail("\"\(key)\" must be a string (found \(body.kindName))") }
        return s
    }

    /// The text under `key`, encoded with `tokenizer`'s special tokens (its padding unused), cut to `maxLength`
    /// tokens or refused when longer, as `longTexts` says.
    public func encode(_ key: String, tokenizer: Tokenizer, maxLength: Int,
                       longTexts: TextClassificationData.LongTexts) throws -> [Int] {
        try encoding(key, tokenizer: tokenizer, maxLength: maxLength, longTexts: longTexts).ids
    }

    func encoding(_ key: String, tokenizer: Tokenizer, maxLength: Int,
                  longTexts: TextClassificationData.LongTexts) throws -> Encoding {
        var tok = tokenizer
        tok.padding = nil
        tok.truncation = longTexts == .truncate ? Tokenizer.Truncation(maxLength: maxLength) : nil
        let e: Encoding
        do { e = try tok.encode(try text(key)) } catch let err as TokenizerError { throw fail(err.message) }
        if e.count > maxLength {
            let what = key == "text" ? "the text" : "the \(key)"
            throw fail("\(what) is \(e.count) tokens long, more than the model's \(maxLength) positions "
                + "(truncate long texts instead of refusing them to keep it)")
        }
        return e
    }
}

extension MultitaskDataFile {
    /// Calls `body` with each non-blank line of JSONL `text` parsed into a `JSONLRecord` (an object; anything else
    /// is an error naming the line).
    public static func forEachJSONLRecord(_ text: String, path: String, _ body: (JSONLRecord) throws -> Void) throws {
        try forEachJSONLLine(text) { lineNumber, line in
            let fail = { (m: String) in MultitaskDataError(file: path, line: lineNumber, m) }
            let object: [String: JSONValue]
            do {
                guard let o = try JSONValue(parsing: line).objectValue else { throw fail("expected a JSON object") }
                object = o
            } catch let e as JSONError { throw fail("not valid JSON (\(e))") }
            try body(JSONLRecord(path: path, line: lineNumber, object: object))
        }
    }
}
