import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Multitask text classification data: each sample a task, a text and a label, tokenized once.
///
/// JSONL, one object per line (blank lines allowed, other keys ignored); a task or label may be a string or an
/// integer (its decimal name):
/// ```
/// {"task": "sentiment", "text": "a fine film", "label": "positive"}
/// ```
/// Task and label names become ids in order of first appearance, or follow given tables (`taskNames`,
/// `labelNames`: then an unknown name is an error naming the line). The label space is shared by all tasks (one
/// classifier over every label). Texts longer than `maxLength` tokens (with the tokenizer's special tokens) are
/// truncated or refused, as `longTexts` says. Every problem is a `MultitaskDataError` naming the file and line.
public struct TextClassificationData: Sendable {
    public enum LongTexts: Sendable { case truncate, refuse }

    public struct Sample: Sendable, Equatable {
        public var taskID: Int
        public var labelID: Int
        /// Token ids with the tokenizer's special tokens, and their token types.
        public var ids: [Int]
        public var typeIDs: [Int]

        public init(taskID: Int, labelID: Int, ids: [Int], typeIDs: [Int]) {
            self.taskID = taskID
            self.labelID = labelID
            self.ids = ids
            self.typeIDs = typeIDs
        }
    }

    public var taskNames: [String]
    public var labelNames: [String]
    public var samples: [Sample]

    public init(taskNames: [String], labelNames: [String], samples: [Sample]) {
        self.taskNames = taskNames
        self.labelNames = labelNames
        self.samples = samples
    }

    public var count: Int { samples.count }

    /// The samples at `indices`, with the same task and label tables.
    public func subset(_ indices: [Int]) -> TextClassificationData {
        TextClassificationData(taskNames: taskNames, labelNames: labelNames, samples: indices.map { samples[$0] })
    }

    /// Reads a JSONL file, tokenizing every text with `tokenizer` (its padding is not used; its truncation is
    /// replaced by `maxLength`).
    public static func read(_ path: String, tokenizer: Tokenizer, maxLength: Int, longTexts: LongTexts = .truncate,
                            taskNames: [String]? = nil, labelNames: [String]? = nil) throws -> TextClassificationData {
        let text = try MultitaskDataFile.readText(path)
        var tasks = Table(names: taskNames, what: "task"), labels = Table(names: labelNames, what: "label")
        var samples: [Sample] = []
        try MultitaskDataFile.forEachJSONLRecord(text, path: path) { record in
            _ = try record.text("text")   // a missing or mistyped text is reported before the task and label
            let taskID = try tasks.id(try record.name("task")) { record.fail($0) }
            let labelID = try labels.id(try record.name("label")) { record.fail($0) }
            let encoded = try record.encoding("text", tokenizer: tokenizer, maxLength: maxLength, longTexts: longTexts)
            samples.append(Sample(taskID: taskID, labelID: labelID, ids: encoded.ids, typeIDs: encoded.typeIDs))
        }
        guard !samples.isEmpty else { throw MultitaskDataError(file: path, "no samples") }
        return TextClassificationData(taskNames: tasks.names, labelNames: labels.names, samples: samples)
    }

    /// A name -> id table, fixed (given names: unknown ones are errors) or growing in order of first appearance.
    struct Table {
        var names: [String]
        var ids: [String: Int]
        let fixed: Bool
        let what: String

        init(names: [String]?, what: String) {
            self.names = names ?? []
            ids = Dictionary(self.names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            fixed = names != nil
            self.what = what
        }

        mutating func id(_ name: String, _ fail: (String) -> MultitaskDataError) throws -> Int {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { throw fail("the \(what) name is empty") }
            if let i = ids[trimmed] { return i }
            guard !fixed else {
                throw fail("unknown \(what) '\(MultitaskDataFile.excerpt(trimmed))' (known: \(namesPreview(names)))")
            }
            names.append(trimmed)
            ids[trimmed] = names.count - 1
            return names.count - 1
        }
    }
}
