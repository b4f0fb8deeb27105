import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Reads and writes a user's multitask regression data as JSONL or CSV.
///
/// JSONL: one object per line, blank lines allowed, other keys ignored:
/// ```
/// {"input": [0.1, -2.0, ...], "target": [1.5, ...], "task": "sentiment"}
/// ```
/// CSV (RFC 4180: fields may be quoted, `""` is a quote inside a quoted field): a header row naming a `task` column,
/// input columns `x0 ... x{in-1}` and target columns `y0 ... y{out-1}`, in any order; no other columns.
/// ```
/// task,x0,x1,y0
/// "a, quoted name",0.5,1,-2
/// ```
/// Task names become ids in order of first appearance, or follow a given name table (see `UnknownTaskPolicy`).
/// Every problem is a `MultitaskDataError` naming the file, the 1-based line and what is wrong, e.g.
/// `data.jsonl:17: "input" has 31 values, expected 32`. Values must be finite.
public enum MultitaskDataFile {
    /// The file format, chosen by extension.
    public enum Format: String, Sendable, CaseIterable {
        case jsonl, csv

        /// The format of `path` from its extension (`.jsonl`, `.csv`, case-insensitive).
        public init(path: String) throws {
            let ext = (path as NSString).pathExtension.lowercased()
            guard let f = Format(rawValue: ext) else {
                throw MultitaskDataError(file: path, "unknown data format '.\(ext)': use .jsonl or .csv")
            }
            self = f
        }
    }

    /// What to do with a task name missing from a given name table.
    public enum UnknownTaskPolicy: Sendable {
        /// Throw an error naming the task and line.
        case error
        /// Give it the next free id (appending it to the table).
        case append
    }

    /// Reads `path` (format by extension).
    ///
    /// - Parameters:
    ///   - taskNames: an existing id -> name table to map names through (nil: build one from first appearances).
    ///   - unknownTasks: what to do with names not in `taskNames` (ignored when `taskNames` is nil).
    ///   - inputDim, targetDim: required widths (nil: taken from the first sample / the header).
    public static func read(_ path: String, taskNames: [String]? = nil, unknownTasks: UnknownTaskPolicy = .error,
                            inputDim: Int? = nil, targetDim: Int? = nil) throws -> MultitaskDataset {
        let format = try Format(path: path)
        let text = try readText(path)
        return try parse(text, format: format, file: path, taskNames: taskNames, unknownTasks: unknownTasks,
                         inputDim: inputDim, targetDim: targetDim)
    }

    /// Parses `text` in `format`; `file` is the name used in error messages.
    public static func parse(_ text: String, format: Format, file: String, taskNames: [String]? = nil,
                             unknownTasks: UnknownTaskPolicy = .error,
                             inputDim: Int? = nil, targetDim: Int? = nil) throws -> MultitaskDataset {
        var builder = Builder(file: file, names: taskNames ?? [], fixedTable: taskNames != nil, unknownTasks: unknownTasks,
                              inputDim: inputDim, targetDim: targetDim)
        // Editors on Windows often start UTF-8 files with a byte-order mark; it is not part of the data.
        let body = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        switch format {
        case .jsonl: try parseJSONL(body, into: &builder)
        case .csv: try parseCSV(body, into: &builder)
        }
        return try builder.finish()
    }

    /// Writes `dataset` to `path` atomically in the format its extension names. Non-finite values are an error.
    public static func write(_ dataset: MultitaskDataset, to path: String) throws {
        let text: String
        switch try Format(path: path) {
        case .jsonl: text = try jsonl(dataset)
        case .csv: text = try csv(dataset)
        }
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw MultitaskDataError(file: path, "cannot write file (\(error.localizedDescription))")
        }
    }

    /// The JSONL text of `dataset`: one `{"input": [...], "target": [...], "task": "..."}` line per sample.
    public static func jsonl(_ dataset: MultitaskDataset) throws -> String {
        var out = ""
        for i in 0..<dataset.count {
            let x = try numbers(dataset.input(at: i), sample: i), y = try numbers(dataset.target(at: i), sample: i)
            out += "{\"input\": [\(x.joined(separator: ", "))], \"target\": [\(y.joined(separator: ", "))], "
            out += "\"task\": \(jsonString(dataset.taskNames[dataset.taskIDs[i]]))}\n"
        }
        return out
    }

    /// The CSV text of `dataset`: header `task,x0,...,y0,...`, then one row per sample (task names quoted when needed).
    public static func csv(_ dataset: MultitaskDataset) throws -> String {
        let header = ["task"] + (0..<dataset.inputDim).map { "x\($0)" } + (0..<dataset.targetDim).map { "y\($0)" }
        var out = header.joined(separator: ",") + "\n"
        for i in 0..<dataset.count {
            let fields = [csvField(dataset.taskNames[dataset.taskIDs[i]])]
                + (try numbers(dataset.input(at: i), sample: i)) + (try numbers(dataset.target(at: i), sample: i))
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }

    // MARK: Writing helpers

    /// Shortest round-tripping decimal forms (`0.1`, `1e-05`), which are valid JSON and CSV numbers.
    static func numbers(_ values: [Float], sample: Int) throws -> [String] {
        try values.map {
            guard $0.isFinite else { throw MultitaskDataError("sample \(sample) has the non-finite value \($0)") }
            return "\($0)"
        }
    }

    /// A JSON string literal (the shared writer's escaping, UTF-8 kept).
    static func jsonString(_ s: String) -> String { JSONValue.string(s).compactString() }

    static func csvField(_ s: String) -> String {
        let needsQuotes = s.isEmpty || s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            || s.first?.isWhitespace == true || s.last?.isWhitespace == true
        return needsQuotes ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}

extension MultitaskDataFile {
    /// Accumulates validated samples and the task name table while a file is parsed.
    struct Builder {
        let file: String
        var names: [String]
        var ids: [String: Int]
        let fixedTable: Bool
        let unknownTasks: UnknownTaskPolicy
        var inputDim: Int?, targetDim: Int?
        /// Lines on which the input / target widths were fixed (for messages), 0 when given by the caller.
        var inputWidthLine = 0, targetWidthLine = 0
        var x: [Float] = [], y: [Float] = [], taskIDs: [Int] = []

        init(file: String, names: [String], fixedTable: Bool, unknownTasks: UnknownTaskPolicy, inputDim: Int?, targetDim: Int?) {
            self.file = file
            self.names = names
            self.ids = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            self.fixedTable = fixedTable
            self.unknownTasks = unknownTasks
            self.inputDim = inputDim
            self.targetDim = targetDim
        }

        func error(_ line: Int?, _ message: String) -> MultitaskDataError { MultitaskDataError(file: file, line: line, message) }

        /// Checks `values` (named `what` in messages) against the expected width, fixing the width on first use.
        func check(_ values: [Float], _ what: String, expected: Int?, widthLine: Int, line: Int) throws {
            if let e = expected {
                guard values.count == e else {
                    let origin = widthLine > 0 ? " (as on line \(widthLine))" : ""
                    throw error(line, "\(what) has \(values.count) values, expected \(e)\(origin)")
                }
            } else {
                guard !values.isEmpty else { throw error(line, "\(what) is empty") }
            }
        }

        /// Adds one sample. Task names are trimmed of surrounding white space (`"t0 "` is task `t0`); an empty name
        /// is an error.
        mutating func add(input: [Float], target: [Float], task rawTask: String, line: Int) throws {
            let task = rawTask.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !task.isEmpty else { throw error(line, "the task name is empty") }
            try check(input, "\"input\"", expected: inputDim, widthLine: inputWidthLine, line: line)
            try check(target, "\"target\"", expected: targetDim, widthLine: targetWidthLine, line: line)
            if inputDim == nil { inputDim = input.count; inputWidthLine = line }
            if targetDim == nil { targetDim = target.count; targetWidthLine = line }
            let id: Int
            if let known = ids[task] {
                id = known
            } else if fixedTable && unknownTasks == .error {
                throw error(line, "unknown task \"\(MultitaskDataFile.excerpt(task))\" (not in the model's \(names.count) tasks)")
            } else {
                id = names.count
                names.append(task)
                ids[task] = id
            }
            x += input
            y += target
            taskIDs.append(id)
        }

        func finish() throws -> MultitaskDataset {
            guard !taskIDs.isEmpty else { throw MultitaskDataError(file: file, "no samples (empty file)") }
            return MultitaskDataset(unchecked: Tensor(x, shape: [taskIDs.count, inputDim!]),
                                    targets: Tensor(y, shape: [taskIDs.count, targetDim!]), taskIDs: taskIDs, taskNames: names)
        }
    }
}

extension MultitaskDataFile {
    /// A field as errors quote it: whole up to 40 characters, else its first 40 and its length (a 20 MB field is not
    /// echoed).
    /// The UTF-8 text of the data file at `path`; a file that cannot be read, or is not UTF-8 (named with the line
    /// of the first bad byte), is a `MultitaskDataError`.
    public static func readText(_ path: String) throws -> String {
        let data: Data
        do { data = try FileContents.read(URL(fileURLWithPath: path)) } catch let e as FileFormatError {
            throw MultitaskDataError(file: path, e.message)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw MultitaskDataError(file: path, line: firstInvalidUTF8Line(data), "not valid UTF-8")
        }
        return text
    }

    static func excerpt(_ s: String) -> String {
        s.count <= 40 ? s : String(s.prefix(40)) + "... (\(s.count) characters)"
    }
}

extension MultitaskDataFile {
    /// The 1-based line of the first byte sequence that is not UTF-8 (nil when all of `data` is).
    static func firstInvalidUTF8Line(_ data: Data) -> Int? {
        var bytes = data.makeIterator(), decoder = UTF8(), line = 1
        while true {
            switch decoder.decode(&bytes) {
            case .scalarValue(let s): if s == "\n" { line += 1 }
            case .emptyInput: return nil
            case .error: return line
            }
        }
    }
}
