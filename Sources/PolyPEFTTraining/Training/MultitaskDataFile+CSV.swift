import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

extension MultitaskDataFile {
    /// One CSV record: its fields and the line it starts on.
    struct CSVRecord {
        var fields: [String]
        var line: Int
    }

    /// Splits RFC 4180 text into records. Quoted fields may hold commas, newlines and doubled quotes; lines end in
    /// `\n` or `\r\n`; a record that is a single empty field (a blank line) is dropped.
    static func csvRecords(_ text: String, file: String) throws -> [CSVRecord] {
        var records: [CSVRecord] = []
        var fields: [String] = [], field = [UInt8]()
        var line = 1, recordLine = 1
        var inQuotes = false, wasQuoted = false, afterQuote = false
        let bytes = Array(text.utf8)
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
            afterQuote = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) { records.append(CSVRecord(fields: fields, line: recordLine)) }
            fields.removeAll()
        }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if inQuotes {
                if b == UInt8(ascii: "\"") {
                    if i < bytes.count && bytes[i] == UInt8(ascii: "\"") { field.append(b); i += 1 } else { inQuotes = false; afterQuote = true }
                } else {
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                }
                continue
            }
            switch b {
            case UInt8(ascii: ","):
                endField()
            case UInt8(ascii: "\n"):
                endRecord()
                line += 1
                recordLine = line
            case UInt8(ascii: "\r") where i < bytes.count && bytes[i] == UInt8(ascii: "\n"):
                continue
            case UInt8(ascii: "\""):
                guard field.isEmpty && !wasQuoted else {
                    throw MultitaskDataError(file: file, line: line, "quote inside an unquoted field (quote the whole field and double inner quotes)")
                }
                inQuotes = true
                wasQuoted = true
            default:
                if afterQuote {
                    throw MultitaskDataError(file: file, line: line, "unexpected text after a closing quote")
                }
                field.append(b)
            }
        }
        if inQuotes { throw MultitaskDataError(file: file, line: recordLine, "unterminated quoted field") }
        if !field.isEmpty || !fields.isEmpty || wasQuoted { endRecord() }
        return records
    }

    /// Parses CSV text (header `task`, `x0...`, `y0...`) into `builder`.
    static func parseCSV(_ text: String, into builder: inout Builder) throws {
        let records = try csvRecords(text, file: builder.file)
        guard let header = records.first else { throw MultitaskDataError(file: builder.file, "no samples (empty file)") }
        // Map columns: task -> index; x_i -> index; y_j -> index.
        var taskColumn: Int?
        var xColumns: [Int: Int] = [:], yColumns: [Int: Int] = [:]
        for (c, raw) in header.fields.enumerated() {
            let name = raw.trimmingCharacters(in: .whitespaces)
            func claim(_ table: inout [Int: Int], _ k: Int) throws {
                guard table[k] == nil else { throw builder.error(header.line, "column \"\(name)\" appears twice") }
                table[k] = c
            }
            if name == "task" {
                guard taskColumn == nil else { throw builder.error(header.line, "column \"task\" appears twice") }
                taskColumn = c
            } else if let k = indexedColumn(name, "x") {
                try claim(&xColumns, k)
            } else if let k = indexedColumn(name, "y") {
                try claim(&yColumns, k)
            } else {
                throw builder.error(header.line, "unknown column \"\(MultitaskDataFile.excerpt(name))\" (expected task, x0, x1, ..., y0, y1, ...)")
            }
        }
        guard let taskColumn else { throw builder.error(header.line, "header has no \"task\" column") }
        let xs = try contiguous(xColumns, "x", builder, header.line)
        let ys = try contiguous(yColumns, "y", builder, header.line)
        for (table, what, expected) in [(xs, "input", builder.inputDim), (ys, "target", builder.targetDim)] {
            if let e = expected, e != table.count {
                throw builder.error(header.line, "header has \(table.count) \(what) columns, expected \(e)")
            }
        }
        for r in records.dropFirst() {
            guard r.fields.count == header.fields.count else {
                throw builder.error(r.line, "\(r.fields.count) fields, but the header has \(header.fields.count)")
            }
            func value(_ c: Int) throws -> Float {
                let name = header.fields[c].trimmingCharacters(in: .whitespaces)
                let s = r.fields[c].trimmingCharacters(in: .whitespaces)
                guard !s.isEmpty else { throw builder.error(r.line, "column \"\(name)\" is empty") }
                guard let v = Float(s) else {
                    throw builder.error(r.line, "column \"\(name)\": \"\(MultitaskDataFile.excerpt(s))\" is not a number")
                }
                guard v.isFinite else { throw builder.error(r.line, "column \"\(name)\": \(MultitaskDataFile.excerpt(s)) is not finite") }
                return v
            }
            let task = r.fields[taskColumn]
            guard !task.isEmpty else { throw builder.error(r.line, "column \"task\" is empty") }
            try builder.add(input: try xs.map(value), target: try ys.map(value), task: task, line: r.line)
        }
    }

    /// `k` when `name` is `prefix` followed by a canonical decimal index (`x0`, `x17`; not `x01`).
    private static func indexedColumn(_ name: String, _ prefix: Character) -> Int? {
        guard name.first == prefix, let k = Int(name.dropFirst()), k >= 0, String(k) == name.dropFirst() else { return nil }
        return k
    }

    /// The column indices of `prefix0 ... prefix{n-1}` in order, or an error naming the first gap.
    private static func contiguous(_ table: [Int: Int], _ prefix: String, _ builder: Builder, _ line: Int) throws -> [Int] {
        guard !table.isEmpty else { throw builder.error(line, "header has no \(prefix)0 column") }
        let n = table.keys.max()! + 1
        if let missing = (0..<n).first(where: { table[$0] == nil }) {
            throw builder.error(line, "header has \(prefix)\(n - 1) but no \(prefix)\(missing) column")
        }
        return (0..<n).map { table[$0]! }
    }
}
