import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import polyctl

final class SVGPlotTests: XCTestCase {
    /// Parses `svg` as XML; returns the element names in document order (fails the test when not well-formed).
    final class Collector: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var texts: [String] = []
        var current = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elements.append(name)
            current = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { texts.append(current) }
            current = ""
        }
    }

    func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> Collector {
        let parser = XMLParser(data: Data(svg.utf8))
        let c = Collector()
        parser.delegate = c
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))", file: file, line: line)
        return c
    }

    /// Writes `svg` to `$POLYCTL_SVG_DIR/name` when that variable is set (to look at the pictures).
    func keep(_ svg: String, _ name: String) throws {
        guard let dir = ProcessInfo.processInfo.environment["POLYCTL_SVG_DIR"] else { return }
        try svg.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    static func lossPlot(logY: Bool) -> SVGLinePlot {
        var train: [(x: Double, y: Double)] = [], val: [(x: Double, y: Double)] = []
        for step in 1...300 {
            let t = Double(step)
            train.append((x: t, y: 2.0 / (1 + 0.05 * t) + 0.02 * sin(t)))
            if step % 25 == 0 { val.append((x: t, y: 2.2 / (1 + 0.04 * t))) }
        }
        return SVGLinePlot(title: "Poly on synthetic tasks <demo>", xLabel: "step", yLabel: "MSE loss",
                           series: [.init(name: "train", points: train), .init(name: "validation", points: val),
                                    .init(name: "shared LoRA (val)", points: [(x: 0, y: 1.1), (x: .nan, y: 1), (x: 300, y: 0.9)])],
                           logY: logY)
    }

    func testLinePlotIsWellFormedWithOneLinePerSeries() throws {
        for logY in [false, true] {
            let svg = Self.lossPlot(logY: logY).render()
            let c = parse(svg)
            XCTAssertEqual(c.elements.first, "svg")
            XCTAssertEqual(c.elements.filter { $0 == "polyline" }.count, 2)
            XCTAssertEqual(c.elements.filter { $0 == "circle" }.count, 2, "the broken series leaves two single points")
            XCTAssertTrue(c.texts.contains("Poly on synthetic tasks <demo>"))
            XCTAssertTrue(c.texts.contains("shared LoRA (val)"))
            XCTAssertTrue(c.texts.contains("300"))
            if logY { XCTAssertTrue(c.texts.contains("1") && c.texts.contains("0.1"), "\(c.texts)") }
            try keep(svg, logY ? "lines-log.svg" : "lines.svg")
        }
    }

    func testDegeneratePlotsStayWellFormed() {
        let empty = SVGLinePlot(title: "", xLabel: "x", yLabel: "y", series: [])
        XCTAssertEqual(parse(empty.render()).elements.filter { $0 == "polyline" }.count, 0)
        for logY in [false, true] {
            let flat = SVGLinePlot(title: "flat", xLabel: "x", yLabel: "y",
                                   series: [.init(name: "c", points: [(x: 1, y: 0.5), (x: 1, y: 0.5), (x: 1, y: -1)])], logY: logY)
            let svg = flat.render()
            XCTAssertFalse(svg.contains("nan") || svg.contains("inf"), svg)
            XCTAssertEqual(parse(svg).elements.filter { $0 == "polyline" }.count, 1)
        }
        let one = SVGHeatmap(title: "one", rowLabels: ["r"], columnLabels: ["c"], values: [[3]])
        XCTAssertFalse(one.render().contains("nan"))
        _ = parse(one.render())
    }

    func testHeatmapIsWellFormedWithAnnotatedCells() throws {
        let rows = (0..<18).map { String(format: "task%02d", $0) }
        var values: [[Double]] = []
        for r in 0..<18 { values.append((0..<6).map { c in Double((r * 7 + c * 3) % 11) / 10 }) }
        let map = SVGHeatmap(title: "Learned allocation", rowLabels: rows, columnLabels: (0..<6).map { "skill \($0)" },
                             values: values, range: 0...1, scaleLabel: "routing weight")
        let svg = map.render()
        let c = parse(svg)
        XCTAssertEqual(c.elements.filter { $0 == "rect" }.count, 1 + 18 * 6 + 1, "background, cells, colour bar")
        XCTAssertTrue(c.texts.contains("0.70"))
        XCTAssertTrue(c.texts.contains("task17"))
        XCTAssertTrue(c.texts.contains("routing weight"))
        XCTAssertEqual(c.elements.filter { $0 == "stop" }.count, 11)
        try keep(svg, "heatmap.svg")
        // Short column labels stay horizontal; values outside 0...1 use the data range.
        let small = SVGHeatmap(title: "Task similarity", rowLabels: ["heldout0", "heldout1", "heldout2"],
                               columnLabels: ["s0", "s1", "s2", "s3"], values: [[-1, 0, 0.5, 1], [0.2, 0.4, 0.6, 0.8], [1, 1, -0.5, 0]])
        let smallSVG = small.render()
        XCTAssertFalse(smallSVG.contains("rotate(-45"))
        XCTAssertEqual(parse(smallSVG).elements.filter { $0 == "rect" }.count, 1 + 12 + 1)
        try keep(smallSVG, "heatmap-small.svg")
        // A large matrix gets no numbers in its cells.
        let big = SVGHeatmap(title: "big", rowLabels: (0..<40).map(String.init), columnLabels: (0..<40).map(String.init),
                             values: [[Double]](repeating: (0..<40).map { Double($0) }, count: 40))
        let cb = parse(big.render())
        XCTAssertEqual(cb.texts.filter { $0.contains(".") }.count, 0)
    }

    func testNiceTicksAndLabels() {
        XCTAssertEqual(NiceTicks.linear(0, 1).ticks, [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1])
        XCTAssertEqual(NiceTicks.linear(0, 1).step, 0.2)
        XCTAssertEqual(NiceTicks.linear(0.013, 0.87).ticks.map { NiceTicks.label($0, step: 0.2) }, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(NiceTicks.linear(1, 300, count: 6).ticks, [0, 50, 100, 150, 200, 250, 300])
        XCTAssertEqual(NiceTicks.linear(-3, 7).ticks, [-4, -2, 0, 2, 4, 6, 8])
        XCTAssertEqual(NiceTicks.linear(5, 5).ticks, NiceTicks.linear(4.5, 5.5).ticks)
        XCTAssertEqual(NiceTicks.log(0.003, 2), [0.001, 0.01, 0.1, 1, 10])
        XCTAssertEqual(NiceTicks.log(0.5, 0.6), [0.1, 1])
        XCTAssertEqual(NiceTicks.log(1, 1000), [1, 10, 100, 1000])
        XCTAssertEqual([1e-5, 0.001, 1, 1000, 1e5].map(NiceTicks.logLabel), ["1e-05", "0.001", "1", "1000", "1e+05"])
        XCTAssertEqual(NiceTicks.label(0.30000000000000004, step: 0.1), "0.3")
        XCTAssertEqual(NiceTicks.label(1500, step: 500), "1500")
        XCTAssertEqual(NiceTicks.label(-0.0, step: 0.5), "0.0")
        XCTAssertEqual(SVG.escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot; ")
        XCTAssertEqual(SVG.viridisColor(0).hex, "#440154")
        XCTAssertEqual(SVG.viridisColor(1).hex, "#fde725")
        XCTAssertTrue(SVG.viridisColor(1).light)
        XCTAssertFalse(SVG.viridisColor(0).light)
    }
}
