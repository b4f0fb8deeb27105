import PolyPEFT
import Foundation

/// Formats rows of text into aligned columns for `polyctl eval` / `inspect` output.
///
/// ```
/// task    loss    params
/// ------  ------  ------
/// task00  0.0123     128
/// ```
/// Columns are separated by two spaces; numbers are usually right-aligned (`.right`), names left-aligned. Widths are
/// counted in Characters, so labels with combining marks line up; lines have no trailing spaces.
struct TableFormatter {
    enum Alignment { case left, right }

    /// Column headers (their count fixes the number of columns).
    let headers: [String]
    /// One alignment per column.
    let alignments: [Alignment]
    /// Rows added so far; each has one cell per column.
    private(set) var rows: [[String]] = []

    /// A table with `headers`; `alignments` defaults to the first column left and the others right.
    init(headers: [String], alignments: [Alignment]? = nil) {
        precondition(alignments == nil || alignments!.count == headers.count, "TableFormatter: one alignment per column")
        self.headers = headers
        self.alignments = alignments ?? headers.indices.map { $0 == 0 ? .left : .right }
    }

    /// Appends a row; it must have one cell per column (programmer error otherwise).
    mutating func addRow(_ cells: [String]) {
        precondition(cells.count == headers.count, "TableFormatter: row has \(cells.count) cells, table has \(headers.count) columns")
        rows.append(cells)
    }

    /// The table as lines ending in `\n`: header, dashes under each header, then the rows.
    func render() -> String {
        let widths = headers.indices.map { c in ([headers[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (c, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                parts.append(alignments[c] == .left ? cell + pad : pad + cell)
            }
            var s = parts.joined(separator: "  ")
            while s.last == " " { s.removeLast() }
            return s + "\n"
        }
        return line(headers) + line(widths.map { String(repeating: "-", count: $0) }) + rows.map(line).joined()
    }

    /// `value` with `digits` significant digits in `%g` style (`0.0123`, `1.235`, `1e-05`), `nan`/`inf` spelled out.
    static func number(_ value: Double, digits: Int = 4) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        return String(format: "%.\(digits)g", value)
    }

    /// `value` with a fixed number of decimals (`0.950`).
    static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return number(value) }
        return String(format: "%.\(decimals)f", value)
    }
}

/// A fraction as a percentage with one decimal (`0.8125` -> `81.3%`); NaN as `-`.
func formatPercent(_ x: Float) -> String { x.isNaN ? "-" : formatFixed(Double(x) * 100, digits: 1) + "%" }
