import Foundation

/// Renders training progress: `step 120/2000  loss 0.0123  412.5 steps/s  ETA 4s`.
///
/// Three modes:
/// - `.terminal`: one line redrawn in place (`\r`, the text, then `ESC[K` to clear the rest), at most every
///   `redrawInterval` seconds; `finish` ends it with a newline.
/// - `.plain`: piped output; a full line for the first update, then whenever `plainInterval` seconds have passed,
///   and at `finish`.
/// - `.json`: like `.plain` but each line is one JSON object (`{"step": 120, "total": 2000, "loss": 0.0123,
///   "steps_per_s": 412.5, "eta_s": 4.4, "elapsed_s": 0.29}`, written by `JSONField.line`), for scripts.
///
/// The rate is the mean since the first update: `(step - firstStep) / (now - firstTime)`, and
/// `ETA = (total - step) / rate`. Time comes from `clock` (seconds, monotonic) so tests can drive it.
final class ProgressLine {
    enum Mode: Equatable { case terminal, plain, json }

    let console: Console
    let total: Int
    let mode: Mode
    let redrawInterval: Double
    let plainInterval: Double
    private let clock: () -> Double
    private var first: (step: Int, time: Double)?
    private var lastWrite = -Double.infinity
    private var pendingNewline = false

    /// - Parameters:
    ///   - mode: nil chooses `.terminal` when the console is a terminal, else `.plain`.
    ///   - clock: seconds on a monotonic clock (default: the system's uptime clock).
    init(console: Console, total: Int, mode: Mode? = nil, redrawInterval: Double = 0.1, plainInterval: Double = 5,
         clock: @escaping () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.console = console
        self.total = total
        self.mode = mode ?? (console.isTerminal ? .terminal : .plain)
        self.redrawInterval = redrawInterval
        self.plainInterval = plainInterval
        self.clock = clock
    }

    /// Reports that `step` (1-based) is done, with named metrics in display order.
    func update(step: Int, metrics: KeyValuePairs<String, Double> = [:]) {
        emit(step: step, metrics: Array(metrics), force: false)
    }

    /// Reports the final step: always written; the terminal line is ended with a newline.
    func finish(step: Int, metrics: KeyValuePairs<String, Double> = [:]) {
        emit(step: step, metrics: Array(metrics), force: true)
        if pendingNewline { console.write("\n"); pendingNewline = false }
    }

    /// `update` with metrics built at run time (e.g. by the trainer's callback), in display order.
    func update(step: Int, metricList: [(key: String, value: Double)]) {
        emit(step: step, metrics: metricList, force: false)
    }

    /// `finish` with metrics built at run time, in display order.
    func finish(step: Int, metricList: [(key: String, value: Double)]) {
        emit(step: step, metrics: metricList, force: true)
        if pendingNewline { console.write("\n"); pendingNewline = false }
    }

    /// Writes a line of its own between updates (e.g. a validation result): on a terminal it replaces the updating
    /// line, which is redrawn at the next update; in plain mode it is printed; in JSON mode the caller writes JSON.
    func note(_ text: String) {
        switch mode {
        case .terminal:
            console.write("\r" + text + "\u{1B}[K\n")
            pendingNewline = false
            lastWrite = -Double.infinity
        case .plain:
            console.print(text)
        case .json:
            break
        }
    }

    private func emit(step: Int, metrics: [(key: String, value: Double)], force: Bool) {
        let now = clock()
        if first == nil { first = (step, now) }
        let interval = mode == .terminal ? redrawInterval : plainInterval
        guard force || now - lastWrite >= interval else { return }
        lastWrite = now
        let elapsed = now - first!.time
        let rate: Double? = elapsed > 0 && step > first!.step ? Double(step - first!.step) / elapsed : nil
        switch mode {
        case .terminal:
            console.write("\r" + ProgressLine.text(step: step, total: total, metrics: metrics, rate: rate) + "\u{1B}[K")
            pendingNewline = true
        case .plain:
            console.print(ProgressLine.text(step: step, total: total, metrics: metrics, rate: rate))
        case .json:
            var fields: [(String, JSONField)] = [("step", .int(step)), ("total", .int(total))]
            fields += metrics.map { ($0.key, .shortest($0.value)) }
            if let rate {
                fields.append(("steps_per_s", .shortest(rate)))
                fields.append(("eta_s", .shortest(Double(max(total - step, 0)) / rate)))
            }
            fields.append(("elapsed_s", .shortest(elapsed)))
            console.print(JSONField.line(fields))
        }
    }

    /// The human-readable line, e.g. `step 120/2000  loss 0.0123  412.5 steps/s  ETA 4s` (rate and ETA omitted
    /// until a rate is known).
    static func text(step: Int, total: Int, metrics: [(key: String, value: Double)], rate: Double?) -> String {
        var parts = ["step \(step)/\(total)"]
        parts += metrics.map { "\($0.key) \(TableFormatter.number($0.value))" }
        if let rate {
            parts.append(formatRate(rate))
            parts.append("ETA " + formatDuration(Double(max(total - step, 0)) / rate))
        }
        return parts.joined(separator: "  ")
    }

    /// `412.5 steps/s`; below one step per second, seconds per step (`2.5 s/step`).
    static func formatRate(_ stepsPerSecond: Double) -> String {
        if stepsPerSecond >= 1 || stepsPerSecond <= 0 { return String(format: "%.1f steps/s", stepsPerSecond) }
        return String(format: "%.1f s/step", 1 / stepsPerSecond)
    }

    /// Rounded up to whole seconds: `4s`, `3m05s`, `2h07m` (hours and minutes), `--` when not finite.
    static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--" }
        let s = Int(seconds.rounded(.up))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }
}
