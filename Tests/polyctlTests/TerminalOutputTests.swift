import XCTest
@testable import polyctl

final class TerminalOutputTests: XCTestCase {
    func testHeatmapBlocksExactText() {
        let h = TerminalHeatmap(rowLabels: ["a", "task1"], columnLabels: ["s0", "s1", "s2"],
                                values: [[0, 0.5, 1], [0.25, 0.75, 0.1]])
        let expected = """
                   s0 s1 s2
            a         ▒▒ ██
            task1  ░░ ▓▓

            scale: ' ' 0.00  '░' 0.25  '▒' 0.50  '▓' 0.75  '█' 1.00

            """
        XCTAssertEqual(h.render(), expected)
    }

    func testHeatmapNumbersRangeAndWideHeaders() {
        var h = TerminalHeatmap(rowLabels: ["x", "y"], columnLabels: ["skill0", "s1"], values: [[0.5, 2], [-1, .nan]])
        h.style = .numbers(decimals: 2)
        XCTAssertEqual(h.render(), "   skill0     s1\nx    0.50   2.00\ny   -1.00    nan\n")
        h.style = .blocks
        h.range = 0...1
        // Clamped to the range: 2 -> full, -1 -> empty; nan is '?'. Cells share the widest header's width.
        XCTAssertEqual(h.render(), "   skill0 s1\nx  ▒▒▒▒▒▒ ██████\ny         ??????\n\nscale: ' ' 0.00  '░' 0.25  '▒' 0.50  '▓' 0.75  '█' 1.00\n")
    }

    func testHeatmapColourOnlyWhenAsked() {
        var h = TerminalHeatmap(rowLabels: ["r"], columnLabels: ["a", "b"], values: [[0, 1]])
        XCTAssertFalse(h.render().contains("\u{1B}["))
        h.color = true
        let s = h.render()
        XCTAssertTrue(s.contains("\u{1B}[48;5;53m\u{1B}[38;5;231m  \u{1B}[0m"), s)
        XCTAssertTrue(s.contains("\u{1B}[48;5;226m\u{1B}[38;5;16m██\u{1B}[0m"), s)
    }

    /// A clock the test moves by hand.
    final class FakeClock { var now = 0.0 }

    func drive(_ mode: ProgressLine.Mode) -> String {
        let console = Console(passthrough: false)
        let clock = FakeClock()
        let p = ProgressLine(console: console, total: 100, mode: mode, plainInterval: 5, clock: { clock.now })
        p.update(step: 1, metrics: ["loss": 0.5])
        clock.now = 2
        p.update(step: 40, metrics: ["loss": 0.1])        // within the interval: not written
        clock.now = 5
        p.update(step: 51, metrics: ["loss": 0.0123])
        clock.now = 11
        p.finish(step: 100, metrics: ["loss": 0.01])
        return console.stdout
    }

    func testProgressPlainExact() {
        XCTAssertEqual(drive(.plain), """
            step 1/100  loss 0.5
            step 51/100  loss 0.0123  10.0 steps/s  ETA 5s
            step 100/100  loss 0.01  9.0 steps/s  ETA 0s

            """)
    }

    func testProgressTerminalRedrawsOneLine() {
        let esc = "\u{1B}[K"
        XCTAssertEqual(drive(.terminal), "\rstep 1/100  loss 0.5\(esc)\rstep 40/100  loss 0.1  19.5 steps/s  ETA 4s\(esc)"
                       + "\rstep 51/100  loss 0.0123  10.0 steps/s  ETA 5s\(esc)\rstep 100/100  loss 0.01  9.0 steps/s  ETA 0s\(esc)\n")
    }

    func testProgressNoteInterjectsALine() {
        for (mode, expected) in [(ProgressLine.Mode.terminal, "\rstep 1/10  loss 0.5\u{1B}[K\rvalidation: ok\u{1B}[K\n\rstep 2/10  loss 0.4  1.0 steps/s  ETA 8s\u{1B}[K"),
                                 (.plain, "step 1/10  loss 0.5\nvalidation: ok\n"), (.json, "{\"step\": 1, \"total\": 10, \"loss\": 0.5, \"elapsed_s\": 0}\n")] {
            let console = Console(passthrough: false)
            let clock = FakeClock()
            let p = ProgressLine(console: console, total: 10, mode: mode, redrawInterval: 5, plainInterval: 5, clock: { clock.now })
            p.update(step: 1, metrics: ["loss": 0.5])
            p.note("validation: ok")
            clock.now = 1
            p.update(step: 2, metrics: ["loss": 0.4])        // a terminal redraws at once after a note
            XCTAssertEqual(console.stdout, expected, "\(mode)")
        }
    }

    func testProgressJSONLines() {
        XCTAssertEqual(drive(.json), """
            {"step": 1, "total": 100, "loss": 0.5, "elapsed_s": 0}
            {"step": 51, "total": 100, "loss": 0.0123, "steps_per_s": 10, "eta_s": 4.9, "elapsed_s": 5}
            {"step": 100, "total": 100, "loss": 0.01, "steps_per_s": 9, "eta_s": 0, "elapsed_s": 11}

            """)
    }

    func testProgressWithRuntimeMetricList() {
        let console = Console(passthrough: false)
        let clock = FakeClock()
        let p = ProgressLine(console: console, total: 10, mode: .plain, clock: { clock.now })
        p.update(step: 1, metricList: [(key: "loss", value: 2), (key: "lr", value: 0.001)])
        clock.now = 1
        p.finish(step: 10, metricList: [(key: "loss", value: 1)])
        XCTAssertEqual(console.stdout, "step 1/10  loss 2  lr 0.001\nstep 10/10  loss 1  9.0 steps/s  ETA 0s\n")
    }

    func testProgressModeFollowsConsole() {
        XCTAssertEqual(ProgressLine(console: Console(passthrough: false, isTerminal: true), total: 1).mode, .terminal)
        XCTAssertEqual(ProgressLine(console: Console(passthrough: false), total: 1).mode, .plain)
    }

    func testDurationAndRateFormatting() {
        XCTAssertEqual([0, 4.2, 59.5, 65, 3599, 2 * 3600 + 7 * 60 + 1].map(ProgressLine.formatDuration),
                       ["0s", "5s", "1m00s", "1m05s", "59m59s", "2h07m"])
        XCTAssertEqual(ProgressLine.formatDuration(.infinity), "--")
        XCTAssertEqual(ProgressLine.formatRate(412.5), "412.5 steps/s")
        XCTAssertEqual(ProgressLine.formatRate(0.4), "2.5 s/step")
        XCTAssertEqual(JSONField.shortest(.nan).text, "null")
        XCTAssertEqual(JSONField.shortest(0.25).text, "0.25")
    }

    func testTableExact() {
        var t = TableFormatter(headers: ["task", "loss", "n"])
        t.addRow(["task00", "0.0123", "128"])
        t.addRow(["t1", "1.5", "7"])
        XCTAssertEqual(t.render(), """
            task      loss    n
            ------  ------  ---
            task00  0.0123  128
            t1         1.5    7

            """)
        var u = TableFormatter(headers: ["a", "b"], alignments: [.right, .left])
        u.addRow(["1", "x"])
        XCTAssertEqual(u.render(), "a  b\n-  -\n1  x\n")
        XCTAssertEqual(TableFormatter.number(0.012345), "0.01235")
        XCTAssertEqual(TableFormatter.number(-.infinity), "-inf")
        XCTAssertEqual(TableFormatter.fixed(0.95, decimals: 3), "0.950")
    }
}
