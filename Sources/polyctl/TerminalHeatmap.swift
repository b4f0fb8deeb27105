import Foundation

/// A matrix drawn as text, for `polyctl inspect` and the end of `polyctl train`:
///
/// ```
///         s0  s1  s2
/// task00  ██  ░░
/// task01  ▒▒  ██  ▓▓
///
/// scale: ' ' 0.00  '░' 0.25  '▒' 0.50  '▓' 0.75  '█' 1.00
/// ```
/// Each value `v` is mapped to `t = (v - lo) / (hi - lo)` in [0, 1] (clamped; `lo...hi` is `range`, or the data's
/// min...max) and drawn as the block `" ░▒▓█"[round(4 t)]` repeated to the cell width, or as a number. With `color`
/// (only when the console is a terminal) each cell also gets an ANSI 256-colour background from a viridis-like ramp.
struct TerminalHeatmap {
    enum Style: Equatable {
        /// Shade characters ` ░▒▓█`.
        case blocks
        /// The value with this many decimals.
        case numbers(decimals: Int)
    }

    static let shades: [Character] = [" ", "░", "▒", "▓", "█"]
    /// ANSI 256-colour codes from dark purple to yellow (a coarse viridis).
    static let palette = [53, 54, 60, 61, 67, 31, 37, 36, 72, 78, 114, 149, 184, 226]

    let rowLabels: [String]
    let columnLabels: [String]
    /// `[rows][columns]`.
    let values: [[Float]]
    var style: Style = .blocks
    /// Values mapped to the ends of the scale (nil: the data's min...max).
    var range: ClosedRange<Float>?
    /// ANSI colour backgrounds; set it from `Console.isTerminal`.
    var color = false
    /// Print the scale line under the matrix (for `.numbers`, only with `color`).
    var legend = true

    init(rowLabels: [String], columnLabels: [String], values: [[Float]]) {
        precondition(values.count == rowLabels.count && values.allSatisfy { $0.count == columnLabels.count },
                     "TerminalHeatmap: values must be [rows][columns] matching the labels")
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.values = values
    }

    /// The scale's ends actually used.
    var bounds: (lo: Float, hi: Float) {
        if let range { return (range.lowerBound, range.upperBound) }
        let finite = values.flatMap { $0 }.filter(\.isFinite)
        return (finite.min() ?? 0, finite.max() ?? 1)
    }

    /// Position of `v` on the scale, clamped to [0, 1] (0.5 when the scale is a single value; nil for nan).
    func position(_ v: Float) -> Float? {
        guard !v.isNaN else { return nil }
        let (lo, hi) = bounds
        guard hi > lo else { return 0.5 }
        return Swift.min(Swift.max((v - lo) / (hi - lo), 0), 1)
    }

    func render() -> String {
        let cellText: [[String]] = values.map { row in row.map { cell($0) } }
        let contentWidth = cellText.flatMap { $0 }.map(\.count).max() ?? 1
        let width = Swift.max(contentWidth, columnLabels.map(\.count).max() ?? 0, 2)
        let labelWidth = rowLabels.map(\.count).max() ?? 0
        func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
            let p = String(repeating: " ", count: Swift.max(w - s.count, 0))
            return right ? p + s : s + p
        }
        var out = String(repeating: " ", count: labelWidth) + "  "
        out += columnLabels.map { pad($0, width, right: style != .blocks) }.joined(separator: " ")
        out = out.trimmingTrailingSpaces() + "\n"
        for (r, row) in cellText.enumerated() {
            var line = pad(rowLabels[r], labelWidth) + "  "
            for (c, text) in row.enumerated() {
                let body: String
                if case .blocks = style, text.count == 1, let ch = text.first {
                    body = String(repeating: ch, count: width)
                } else {
                    body = pad(text, width, right: true)
                }
                line += (c > 0 ? " " : "") + colored(body, values[r][c])
            }
            out += (color ? line : line.trimmingTrailingSpaces()) + "\n"
        }
        // Numbers speak for themselves unless colour needs explaining.
        if legend && (style == .blocks || color) { out += "\n" + legendLine() + "\n" }
        return out
    }

    /// The text of one cell before padding: a shade character, or the number.
    func cell(_ v: Float) -> String {
        switch style {
        case .blocks:
            guard let t = position(v) else { return "?" }
            return String(TerminalHeatmap.shades[Int((t * 4).rounded())])
        case .numbers(let d):
            return v.isNaN ? "nan" : String(format: "%.\(d)f", Double(v))
        }
    }

    func colored(_ body: String, _ v: Float) -> String {
        guard color, let t = position(v) else { return body }
        let index = Int((t * Float(TerminalHeatmap.palette.count - 1)).rounded())
        let fg = t > 0.6 ? 16 : 231   // black text on the light end, white on the dark end
        return "\u{1B}[48;5;\(TerminalHeatmap.palette[index])m\u{1B}[38;5;\(fg)m" + body + "\u{1B}[0m"
    }

    func legendLine() -> String {
        let (lo, hi) = bounds
        let marks = (0...4).map { i -> String in
            let v = lo + (hi - lo) * Float(i) / 4
            let label = String(format: "%.2f", Double(v))
            if case .blocks = style { return "'\(TerminalHeatmap.shades[i])' \(label)" }
            return colored(" \(label) ", v)
        }
        return "scale: " + marks.joined(separator: "  ")
    }
}

extension String {
    /// `self` without trailing spaces.
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
