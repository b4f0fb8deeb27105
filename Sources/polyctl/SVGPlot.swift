import Foundation

/// Stand-alone SVG pictures for `polyctl`: training curves (`SVGLinePlot`) and allocation matrices (`SVGHeatmap`).
/// Plain SVG 1.1 text with no scripts or external resources, so any browser or `rsvg-convert` shows it.
enum SVG {
    /// Escapes text for XML content and attribute values.
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case _ where ch.value < 0x20 && ch != "\t" && ch != "\n": out += " "  // not allowed in XML 1.0
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// A coordinate with one decimal (`12.5`), the precision the pictures need.
    static func n(_ v: Double) -> String { String(format: "%.1f", v) }

    static func header(width: Int, height: Int) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
        font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
        <rect width="\(width)" height="\(height)" fill="white"/>

        """
    }

    static func text(_ s: String, x: Double, y: Double, anchor: String = "start", size: Int? = nil,
                     extra: String = "") -> String {
        let sz = size.map { " font-size=\"\($0)\"" } ?? ""
        return "<text x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\"\(sz)\(extra)>\(escape(s))</text>\n"
    }

    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width: Double = 1) -> String {
        "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(n(width))\"/>\n"
    }

    /// Series colours (Tableau 10).
    static let seriesColors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                               "#9c755f", "#bab0ac"]

    /// Viridis, 10 evenly spaced stops from 0 to 1.
    static let viridis: [(Double, Double, Double)] = [
        (0x44, 0x01, 0x54), (0x48, 0x28, 0x78), (0x3e, 0x49, 0x89), (0x31, 0x68, 0x8e), (0x26, 0x82, 0x8e),
        (0x1f, 0x9e, 0x89), (0x35, 0xb7, 0x79), (0x6e, 0xce, 0x58), (0xb5, 0xde, 0x2b), (0xfd, 0xe7, 0x25),
    ]

    /// The viridis colour at `t` in [0, 1] (linear interpolation between stops) as `#rrggbb`, and whether it is
    /// light (relative luminance > 0.4, so text on it should be dark).
    static func viridisColor(_ t: Double) -> (hex: String, light: Bool) {
        let x = Swift.min(Swift.max(t.isNaN ? 0 : t, 0), 1) * Double(viridis.count - 1)
        let i = Swift.min(Int(x), viridis.count - 2), f = x - Double(i)
        let a = viridis[i], b = viridis[i + 1]
        let r = a.0 + (b.0 - a.0) * f, g = a.1 + (b.1 - a.1) * f, bl = a.2 + (b.2 - a.2) * f
        let luminance = (0.2126 * r + 0.7152 * g + 0.0722 * bl) / 255
        return (String(format: "#%02x%02x%02x", Int(r.rounded()), Int(g.rounded()), Int(bl.rounded())), luminance > 0.4)
    }
}

/// "Nice" axis ticks: steps of 1, 2 or 5 times a power of ten (linear), or powers of ten (log).
enum NiceTicks {
    /// About `count` ticks covering `lo...hi`; the first is <= lo and the last >= hi.
    ///
    /// ```
    /// raw = (hi - lo) / count,  step = m * 10^floor(log10 raw) with m the first of 1, 2, 5, 10 reaching raw
    /// ticks = floor(lo / step) * step, ..., ceil(hi / step) * step
    /// ```
    static func linear(_ lo: Double, _ hi: Double, count: Int = 5) -> (ticks: [Double], step: Double) {
        var lo = lo, hi = hi
        if !(hi > lo) { let pad = lo == 0 ? 1 : abs(lo) * 0.1; lo -= pad; hi += pad }
        let raw = (hi - lo) / Double(Swift.max(count, 1))
        let mag = pow(10, floor(log10(raw)))
        let step = ([1.0, 2, 5, 10].first { $0 * mag >= raw * (1 - 1e-9) } ?? 10) * mag
        let first = floor(lo / step + 1e-9), last = ceil(hi / step - 1e-9)
        let ticks = stride(from: first, through: last, by: 1).map { k -> Double in
            let v = k * step
            return abs(v) < step * 1e-9 ? 0 : v
        }
        return (ticks, step)
    }

    /// Decades `10^floor(log10 lo) ... 10^ceil(log10 hi)` (at least one decade); `lo` must be positive.
    static func log(_ lo: Double, _ hi: Double) -> [Double] {
        let a = floor(log10(lo) + 1e-9), b = Swift.max(ceil(log10(hi) - 1e-9), a + 1)
        return stride(from: a, through: b, by: 1).map { pow(10, $0) }
    }

    /// A linear tick label with the decimals its step needs (`0.5`, `20`, `0.002`), or `%g` for extreme values.
    static func label(_ v: Double, step: Double) -> String {
        let v = v == 0 ? 0 : v  // no "-0"
        if abs(v) >= 1e6 || step < 1e-4 { return String(format: "%g", v) }
        let decimals = Swift.max(0, -Int(floor(log10(step) + 1e-9)))
        return String(format: "%.\(decimals)f", v)
    }

    /// A power-of-ten label: `0.001`, `1`, `1000` between 1e-3 and 1e4, else `1e-05` style.
    static func logLabel(_ v: Double) -> String {
        let e = Int((log10(v)).rounded())
        if (-3...4).contains(e) { return e < 0 ? String(format: "%.\(-e)f", v) : String(format: "%.0f", v) }
        return String(format: "%.0e", v)
    }
}

/// A line chart of named series (e.g. training and validation loss per step), with a linear or log y axis.
///
/// Non-finite points (and non-positive ones on a log axis) are skipped and break the line.
struct SVGLinePlot {
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    var logY = false
    var width = 760
    var height = 460

    func render() -> String {
        let usable = series.flatMap { $0.points }.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
        let xs = usable.map(\.x), ys = usable.map(\.y)
        let (xTicks, xStep) = NiceTicks.linear(xs.min() ?? 0, xs.max() ?? 1, count: 6)
        let longest = series.map(\.name.count).max() ?? 0
        let left = 72.0, top = 44.0, bottom = 54.0, right = Double(Swift.max(24, 44 + 7 * longest))
        let plotW = Double(width) - left - right, plotH = Double(height) - top - bottom
        let x0 = xTicks.first!, x1 = xTicks.last!
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        // y mapping and ticks.
        var yTicks: [(Double, String, major: Bool)] = []
        let fy: (Double) -> Double, y0: Double, y1: Double
        if logY {
            // Domain: the data's decades range padded by 5% (at least one decade), ticks at m * 10^k inside it.
            var a = log10(ys.min() ?? 0.1), b = log10(ys.max() ?? 1)
            if b - a < 1 { let mid = (a + b) / 2; a = mid - 0.5; b = mid + 0.5 }
            let pad = 0.05 * (b - a)
            y0 = a - pad; y1 = b + pad
            fy = { log10($0) }
            let labelMinor = y1 - y0 <= 2.5
            for d in NiceTicks.log(pow(10, y0), pow(10, y1)) {
                for m in 1...9 {
                    let v = d * Double(m), e = log10(v)
                    guard e >= y0 - 1e-9 && e <= y1 + 1e-9 else { continue }
                    let label = m == 1 ? NiceTicks.logLabel(v) : (labelMinor && (m == 2 || m == 5) ? String(format: "%g", v) : "")
                    yTicks.append((v, label, m == 1))
                }
            }
        } else {
            let (t, step) = NiceTicks.linear(ys.min() ?? 0, ys.max() ?? 1, count: 5)
            y0 = t.first!; y1 = t.last!
            fy = { $0 }
            yTicks = t.map { ($0, NiceTicks.label($0, step: step), true) }
        }
        func py(_ y: Double) -> Double { top + plotH - (fy(y) - y0) / (y1 - y0) * plotH }

        var s = SVG.header(width: width, height: height)
        s += SVG.text(title, x: left + plotW / 2, y: 26, anchor: "middle", size: 16, extra: " font-weight=\"bold\"")
        s += "<g class=\"grid\">\n"
        for (v, _, major) in yTicks { s += SVG.line(left, py(v), left + plotW, py(v), stroke: major ? "#dddddd" : "#f0f0f0") }
        for v in xTicks { s += SVG.line(px(v), top, px(v), top + plotH, stroke: "#eeeeee") }
        s += "</g>\n<g class=\"axes\">\n"
        s += "<rect x=\"\(SVG.n(left))\" y=\"\(SVG.n(top))\" width=\"\(SVG.n(plotW))\" height=\"\(SVG.n(plotH))\" fill=\"none\" stroke=\"#333333\"/>\n"
        for (v, label, major) in yTicks where !label.isEmpty || major {
            s += SVG.line(left - (major ? 5 : 3), py(v), left, py(v), stroke: "#333333")
            if !label.isEmpty { s += SVG.text(label, x: left - 8, y: py(v) + 4, anchor: "end", extra: major ? "" : " fill=\"#666666\"") }
        }
        for v in xTicks {
            s += SVG.line(px(v), top + plotH, px(v), top + plotH + 5, stroke: "#333333")
            s += SVG.text(NiceTicks.label(v, step: xStep), x: px(v), y: top + plotH + 19, anchor: "middle")
        }
        s += SVG.text(xLabel, x: left + plotW / 2, y: Double(height) - 12, anchor: "middle", size: 13)
        s += SVG.text(yLabel, x: 18, y: top + plotH / 2, anchor: "middle", size: 13,
                      extra: " transform=\"rotate(-90 18 \(SVG.n(top + plotH / 2)))\"")
        s += "</g>\n<g class=\"series\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n"
        for (k, ser) in series.enumerated() {
            let color = SVG.seriesColors[k % SVG.seriesColors.count]
            var segment: [String] = []
            func flush() {
                if segment.count > 1 { s += "<polyline stroke=\"\(color)\" points=\"\(segment.joined(separator: " "))\"/>\n" }
                if segment.count == 1 { s += "<circle r=\"2\" fill=\"\(color)\" cx=\"\(segment[0].split(separator: ",")[0])\" cy=\"\(segment[0].split(separator: ",")[1])\"/>\n" }
                segment = []
            }
            for p in ser.points {
                if p.x.isFinite && p.y.isFinite && (!logY || p.y > 0) { segment.append("\(SVG.n(px(p.x))),\(SVG.n(py(p.y)))") } else { flush() }
            }
            flush()
        }
        s += "</g>\n<g class=\"legend\">\n"
        for (k, ser) in series.enumerated() {
            let y = top + 12 + Double(k) * 20, x = left + plotW + 14
            s += SVG.line(x, y, x + 22, y, stroke: SVG.seriesColors[k % SVG.seriesColors.count], width: 3)
            s += SVG.text(ser.name, x: x + 28, y: y + 4)
        }
        return s + "</g>\n</svg>\n"
    }
}

/// A matrix drawn as coloured cells (viridis) with row and column labels, a colour bar, and the values written
/// in the cells when the matrix is small enough to read them (at most `maxAnnotatedCells` cells).
struct SVGHeatmap {
    var title: String
    var rowLabels: [String]
    var columnLabels: [String]
    /// `[rows][columns]`.
    var values: [[Double]]
    /// Values mapped to the ends of the colour scale (nil: the data's min...max).
    var range: ClosedRange<Double>?
    /// Label of the colour bar.
    var scaleLabel = ""
    var decimals = 2
    var maxAnnotatedCells = 400

    func render() -> String {
        let rows = values.count, cols = columnLabels.count
        let finite = values.flatMap { $0 }.filter(\.isFinite)
        var lo = range?.lowerBound ?? finite.min() ?? 0, hi = range?.upperBound ?? finite.max() ?? 1
        if !(hi > lo) { lo -= 0.5; hi += 0.5 }
        let cw = Swift.min(Swift.max(560 / Double(Swift.max(cols, 1)), 14), 52)
        let ch = Swift.min(Swift.max(520 / Double(Swift.max(rows, 1)), 12), 34)
        let longestColumn = columnLabels.map(\.count).max() ?? 0
        let rotate = Double(longestColumn) * 7 > cw - 4
        let left = 16 + 7.2 * Double(rowLabels.map(\.count).max() ?? 0)
        let top = 52 + (rotate ? 5.5 * Double(longestColumn) : 8)
        let gridW = cw * Double(cols), gridH = ch * Double(rows)
        let barX = left + gridW + 24, barH = Swift.max(gridH, 120)
        let width = Int((barX + 90 + Double(scaleLabel.count) * 3).rounded(.up))
        let height = Int((top + Swift.max(gridH, barH) + 24).rounded(.up))
        let annotate = rows * cols <= maxAnnotatedCells && cw >= 30 && ch >= 14

        var s = SVG.header(width: width, height: height)
        s += SVG.text(title, x: Double(width) / 2, y: 26, anchor: "middle", size: 16, extra: " font-weight=\"bold\"")
        s += "<g class=\"cells\">\n"
        for r in 0..<rows {
            for c in 0..<cols {
                let v = values[r][c], x = left + Double(c) * cw, y = top + Double(r) * ch
                let color: (hex: String, light: Bool) = v.isFinite ? SVG.viridisColor((v - lo) / (hi - lo)) : ("#cccccc", true)
                s += "<rect x=\"\(SVG.n(x))\" y=\"\(SVG.n(y))\" width=\"\(SVG.n(cw))\" height=\"\(SVG.n(ch))\" fill=\"\(color.hex)\" stroke=\"white\" stroke-width=\"1\"/>\n"
                if annotate {
                    let label = v.isFinite ? String(format: "%.\(decimals)f", v) : "nan"
                    s += SVG.text(label, x: x + cw / 2, y: y + ch / 2 + 4, anchor: "middle", size: 10,
                                  extra: " fill=\"\(color.light ? "#000000" : "#ffffff")\"")
                }
            }
        }
        s += "</g>\n<g class=\"labels\">\n"
        for (r, label) in rowLabels.enumerated() {
            s += SVG.text(label, x: left - 6, y: top + (Double(r) + 0.5) * ch + 4, anchor: "end")
        }
        for (c, label) in columnLabels.enumerated() {
            let x = left + (Double(c) + 0.5) * cw
            if rotate {
                s += SVG.text(label, x: x, y: top - 6, extra: " transform=\"rotate(-45 \(SVG.n(x)) \(SVG.n(top - 6)))\"")
            } else {
                s += SVG.text(label, x: x, y: top - 6, anchor: "middle")
            }
        }
        // Colour bar: a vertical gradient (top = hi) with nice ticks.
        s += "</g>\n<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n"
        for i in 0...10 { s += "<stop offset=\"\(SVG.n(Double(i) * 10))%\" stop-color=\"\(SVG.viridisColor(Double(i) / 10).hex)\"/>\n" }
        s += "</linearGradient></defs>\n<g class=\"colorbar\">\n"
        s += "<rect x=\"\(SVG.n(barX))\" y=\"\(SVG.n(top))\" width=\"16\" height=\"\(SVG.n(barH))\" fill=\"url(#scale)\" stroke=\"#333333\"/>\n"
        let (ticks, step) = NiceTicks.linear(lo, hi, count: 5)
        for t in ticks where t >= lo - 1e-9 * (hi - lo) && t <= hi + 1e-9 * (hi - lo) {
            let y = top + barH - (t - lo) / (hi - lo) * barH
            s += SVG.line(barX + 16, y, barX + 21, y, stroke: "#333333")
            s += SVG.text(NiceTicks.label(t, step: step), x: barX + 24, y: y + 4)
        }
        if !scaleLabel.isEmpty {
            let x = barX + 70, y = top + barH / 2
            s += SVG.text(scaleLabel, x: x, y: y, anchor: "middle", extra: " transform=\"rotate(-90 \(SVG.n(x)) \(SVG.n(y)))\"")
        }
        return s + "</g>\n</svg>\n"
    }
}
