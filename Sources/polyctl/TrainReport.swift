import Foundation
import PolyPEFT

/// The end of `polyctl train`: validation and test loss, the learned task x skill allocation as a terminal heatmap
/// (with its recovery of the true allocation on the built-in data), and the pictures `allocation.svg`, `loss.svg`.
struct TrainReport {
    let spec: RunSpec
    let workload: any RunWorkload
    let trainer: Trainer
    let validation: Float?
    let dir: URL
    /// Test scores of the shared-LoRA baseline and its rank, when trained.
    var baseline: (RunEvaluation, rank: Int)?

    /// Each Poly layer's eval-mode allocation averaged over splits: `[tasks][skills]`. Layers are kept apart:
    /// skill k of one layer has nothing to do with skill k of another.
    static func allocations(_ peft: PeftModel) throws -> [(path: String, matrix: [[Float]])] {
        try peft.routing().map { ($0.path, InspectCommand.matrix($0.weights)) }
    }

    func emit(_ console: Console, json: Bool) throws {
        let test = try workload.evaluateTest()
        let allocs = try TrainReport.allocations(workload.peft)
        let recoveries = allocs.compactMap { a in workload.trueAllocation.map { RoutingDiagnostics.recovery(learned: a.matrix, truth: $0) } }
        let recovery = recoveries.isEmpty ? nil : (cells: recoveries.map(\.cellAccuracy).reduce(0, +) / Float(recoveries.count),
                                                   rows: recoveries.map(\.exactRowAccuracy).reduce(0, +) / Float(recoveries.count))
        try writePictures(allocs)
        if json {
            var fields: [(String, JSONField)] = [("event", .string("summary")), ("steps", .int(trainer.step)),
                                                 ("test_loss", .shortest(Double(test.loss))), ("output", .string(dir.path)),
                                                 ("trainable_parameters", .int(workload.peft.trainableParameterCount))]
            if let accuracy = test.accuracy {
                let key = "test_" + test.accuracyName.replacingOccurrences(of: " ", with: "_")
                fields.append((key, .shortest(Double(accuracy))))
                let tasks = test.perTask.keys.sorted().map { (spec.taskNames[$0], JSONField.shortest(Double(test.perTask[$0]!.accuracy ?? .nan))) }
                fields.append((key + "_per_task", .object(tasks)))
            }
            if let validation { fields.append(("validation_loss", .shortest(Double(validation)))) }
            if let (b, _) = baseline {
                fields.append(("baseline_shared_lora_test_loss", .shortest(Double(b.loss))))
                if let a = b.accuracy {
                    fields.append(("baseline_shared_lora_test_" + b.accuracyName.replacingOccurrences(of: " ", with: "_"), .shortest(Double(a))))
                }
            }
            if let r = recovery {
                fields.append(("allocation_cell_accuracy", .shortest(Double(r.cells))))
                fields.append(("allocation_exact_rows", .shortest(Double(r.rows))))
            }
            console.print(JSONField.line(fields))
            return
        }
        console.print("")
        let shown = allocs.count <= Self.maxHeatmaps ? allocs.count : Self.maxHeatmaps - 1
        for (i, (path, alloc)) in allocs.enumerated() {
            if i == shown {
                console.print("(\(allocs.count - shown) more layers: \(Self.allocationPicture) draws every layer, 'polyctl inspect \(dir.path)' prints them)")
                console.print("")
                break
            }
            console.print("Learned allocation of \(path) (task x skill, eval-mode routing\(spec.splits > 1 ? " averaged over splits" : "")):")
            var map = TerminalHeatmap(rowLabels: spec.taskNames, columnLabels: (0..<alloc[0].count).map { "s\($0)" }, values: alloc)
            map.range = 0...1
            map.color = console.isTerminal
            map.legend = i == shown - 1
            console.write(map.render())
            if i < recoveries.count {
                let r = recoveries[i]
                let rows = Int((r.exactRowAccuracy * Float(alloc.count)).rounded())
                console.print("Recovery of the true allocation: \(formatFixed(Double(r.cellAccuracy) * 100, digits: 1))% of cells, \(rows)/\(alloc.count) tasks exactly")
            }
            console.print("")
        }
        if !recoveries.isEmpty { console.print("(skills matched to the truth by an optimal assignment; cells thresholded at 0.5 after scaling rows to max 1)") }
        if let accuracy = test.accuracy {
            console.write(Self.accuracyTable(test, taskNames: spec.taskNames).render())
            var line = "Test \(test.accuracyName): \(formatPercent(accuracy))   cross-entropy: \(formatFixed(Double(test.loss), digits: 4))"
            if let validation { line += "   validation cross-entropy: \(formatFixed(Double(validation), digits: 4))" }
            console.print(line)
            if let (b, rank) = baseline, let a = b.accuracy {
                console.print("Shared LoRA baseline (one rank-\(rank) adapter for all tasks, same size): test \(b.accuracyName) \(formatPercent(a))")
            }
        } else {
            var losses = "Test loss (MSE): \(formatFixed(Double(test.loss), digits: 5))"
            if let validation { losses += "   validation: \(formatFixed(Double(validation), digits: 5))" }
            console.print(losses)
            if let (b, rank) = baseline {
                let ratio = test.loss > 0 ? Double(b.loss / test.loss) : .infinity
                console.print("Shared LoRA baseline (one rank-\(rank) adapter for all tasks, same size): test loss \(formatFixed(Double(b.loss), digits: 5)), \(formatFixed(ratio, digits: 1))x the routed model's")
            }
        }
        let pictures = allocs.isEmpty ? Self.lossPicture : "\(Self.allocationPicture), \(Self.lossPicture)"
        let base = spec.text.map { $0.modelPath == nil ? ", \(TextBase.folderName)/ (the built-in model)" : "" } ?? ""
        console.print("Wrote \(dir.path)/: adapter_config.json, adapter_model.safetensors (PEFT format), \(pictures), checkpoint/\(base)")
        if spec.mixing == .outputs && spec.method.isRouted {
            console.print("Note: output mixing is a PolyPEFT extension; Hugging Face PEFT would load this folder but compute parameter mixing. Train with --mixing parameters for PEFT, or export tasks as LoRA.")
        }
    }

    /// Per-task test accuracy of a classifier: task, samples, accuracy, cross-entropy.
    static func accuracyTable(_ e: RunEvaluation, taskNames: [String]) -> TableFormatter {
        var table = TableFormatter(headers: ["task", "samples", e.accuracyName, "cross-entropy"])
        for t in e.perTask.keys.sorted() {
            let r = e.perTask[t]!
            table.addRow([taskNames[t], String(r.samples), formatPercent(r.accuracy ?? .nan), formatFixed(Double(r.loss), digits: 4)])
        }
        table.addRow(["all", String(e.perTask.values.reduce(0) { $0 + $1.samples }), formatPercent(e.accuracy ?? .nan),
                      formatFixed(Double(e.loss), digits: 4)])
        return table
    }

    /// Layers whose allocation the terminal shows; more are summarised (a real model has dozens).
    static let maxHeatmaps = 4

    static let allocationPicture = "allocation.svg"
    static let lossPicture = "loss.svg"

    func writePictures(_ allocs: [(path: String, matrix: [[Float]])]) throws {
        var series = [SVGLinePlot.Series(name: "training", points: trainer.lossHistory.enumerated().map { (Double($0.offset + 1), Double($0.element)) })]
        series.append(.init(name: "validation", points: trainer.validationHistory.map { (Double($0.step), Double($0.loss)) }))
        let loss = SVGLinePlot(title: "Loss", xLabel: "step", yLabel: workload.lossName, series: series, logY: true)
        try AtomicFile.write(Data(loss.render().utf8), to: dir.appendingPathComponent(Self.lossPicture))
        guard !allocs.isEmpty else { return }
        // Layers side by side as one matrix: columns "fc1 s0" ... "fc2 s5".
        let columns = allocs.flatMap { a in (0..<a.matrix[0].count).map { "\(a.path) s\($0)" } }
        let values = spec.taskNames.indices.map { t in allocs.flatMap { $0.matrix[t].map(Double.init) } }
        var heat = SVGHeatmap(title: "Learned task x skill allocation (per layer)", rowLabels: spec.taskNames,
                              columnLabels: columns, values: values)
        heat.range = 0...1
        heat.scaleLabel = "routing weight"
        try AtomicFile.write(Data(heat.render().utf8), to: dir.appendingPathComponent(Self.allocationPicture))
    }
}
