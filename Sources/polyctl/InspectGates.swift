import Foundation
import PolyPEFT

/// `polyctl inspect RUN --gates`: the learned gates of a gated run (bottleneck adapters, the adapters library's
/// LoRA / (IA)^3, prefix tuning or MAM with `--gating` or `--task-gates`; UniPELT) on the run's test set: the mean gate of each task at every layer and location (the
/// adapters library's gating scores, `GatingScores`, averaged over the samples and the modules of a location), as a
/// table and, with `--svg FILE`, a heatmap.
enum InspectGates {
    static let batchSize = 64

    /// Rows: the run's tasks then "all"; columns: `L<layer> <location>`; values: mean gates.
    static func measure(_ run: RunModel) throws -> (rows: [String], columns: [String], values: [[Double]], samples: Int) {
        guard let text = run.spec.text, let base = run.text else {
            throw CLIError.runtime("\(run.dir.path): --gates needs a text run (gated methods adapt transformers)")
        }
        guard run.spec.isGated else {
            throw CLIError.runtime("\(run.dir.path): a \(run.spec.method.label) run\(run.spec.method.takesTaskGates ? " without --gating" : "") has no gates")
        }
        let count: Int, taskOf: (Int) -> Int, loss: ([Int], Context) throws -> Variable
        switch text.kind {
        case .classification:
            let set = try TextRunData.load(run.spec, text, tokenizer: base.tokenizer).test
            let objective = try TextClassificationObjective(model: try base.classifier, data: set, padID: base.padID, heads: text.heads)
            (count, taskOf, loss) = (set.count, { set.samples[$0].taskID }, { try objective.loss(batch: $0, $1) })
        case .generation:
            let set = try TextToTextRunData.load(run.spec, text, tokenizer: base.tokenizer).test
            let objective = TextToTextObjective(model: try base.generator, data: set)
            (count, taskOf, loss) = (set.count, { set.samples[$0].taskID }, { try objective.loss(batch: $0, $1) })
        }
        var sums: [String: [Int: (sum: Double, n: Int)]] = [:]                 // place -> task -> running sum
        var order: [(layer: Int, location: String)] = []
        for start in stride(from: 0, to: count, by: batchSize) {
            let rows = Array(start..<Swift.min(start + batchSize, count))
            let recorder = Recorder()
            _ = try loss(rows, Context(mode: .eval, recordsGradients: false, recorder: recorder))
            let gates = GatingScores(recorder)
            if order.isEmpty { order = gates.places }
            for (layer, location) in gates.places {
                guard let values = gates.perSample(layer: layer, location: location), values.count == rows.count else { continue }
                let key = "L\(layer) \(location)"
                for (i, v) in values.enumerated() {
                    var acc = sums[key]?[taskOf(rows[i])] ?? (0, 0)
                    acc.sum += Double(v)
                    acc.n += 1
                    sums[key, default: [:]][taskOf(rows[i])] = acc
                }
            }
        }
        let columns = order.map { "L\($0.layer) \($0.location)" }
        guard !columns.isEmpty else { throw CLIError.runtime("\(run.dir.path): the forward recorded no gates") }
        let tasks = Array(run.spec.taskNames.indices)
        var values = tasks.map { t in columns.map { c in sums[c]?[t].map { $0.sum / Double($0.n) } ?? .nan } }
        values.append(columns.map { c in
            let all = sums[c]?.values.reduce((0.0, 0)) { ($0.0 + $1.sum, $0.1 + $1.n) } ?? (0, 0)
            return all.1 > 0 ? all.0 / Double(all.1) : .nan
        })
        return (run.spec.taskNames + ["all"], columns, values, count)
    }

    static func run(_ run: RunModel, svg: String?, numbers: Bool, json: Bool, _ console: Console) throws {
        let m = try measure(run)
        if json {
            let o: [String: JSONValue] = [
                "samples": .int(m.samples),
                "gates": .object(Dictionary(uniqueKeysWithValues: zip(m.rows, m.values).map { row, v in
                    (row, JSONValue.object(Dictionary(uniqueKeysWithValues: zip(m.columns, v).map { ($0, $1.isFinite ? .double($1) : .null) })))
                })),
            ]
            console.print(JSONValue.object(o).pythonStyleString(indent: 2, sortKeys: true))
        } else {
            console.print("Mean gates of \(run.spec.method.label) on the test set (\(m.samples) samples; task x layer and location):")
            var map = TerminalHeatmap(rowLabels: m.rows, columnLabels: m.columns, values: m.values.map { $0.map(Float.init) })
            map.range = 0...1
            map.color = console.isTerminal
            map.style = numbers ? .numbers(decimals: 2) : .blocks
            console.write(map.render())
        }
        if let svg {
            let picture = SVGHeatmap(title: "Mean gates, \(run.spec.method.label)", rowLabels: m.rows, columnLabels: m.columns,
                                     values: m.values, range: 0...1, scaleLabel: "gate")
            try AtomicFile.write(picture.render(), to: URL(fileURLWithPath: svg))
            if !json { console.print("Wrote \(svg)") }
        }
    }
}
