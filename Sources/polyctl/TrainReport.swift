import Foundation
import PolyPEFT

/// The end of `polyctl train`: validation and test loss, the learned task x skill allocation as a terminal heatmap
/// (with its recovery of the true allocation on the built-in data), and the pictures `allocation.svg`, `loss.svg`.
struct TrainReport {
    let spec: RunSpec
    let data: RunData
    let peft: PeftModel
    let trainer: Trainer
    let validation: Float?
    let dir: URL

    /// The eval-mode allocation averaged over splits and layers: `[tasks][skills]`, or nil without Poly layers.
    static func allocation(_ peft: PeftModel) throws -> [[Float]]? {
        let layers = try peft.routing()
        guard let first = layers.first else { return nil }
        let (t, k) = (first.weights.shape[0], first.weights.shape[2])
        var sum = [[Float]](repeating: [Float](repeating: 0, count: k), count: t)
        for (_, w) in layers {
            let m = try w.mean(axes: [1])                       // [T, K]
            for i in 0..<t { for j in 0..<k { sum[i][j] += m[i, j] / Float(layers.count) } }
        }
        return sum
    }

    func emit(_ console: Console, json: Bool) throws {
        let model = peft.model as! MLP
        let test = try RegressionObjective.evaluate(model, data.test)
        let alloc = try TrainReport.allocation(peft)
        let recovery = alloc.flatMap { a in data.synthetic.map { RoutingDiagnostics.recovery(learned: a, truth: $0.trueAllocation) } }
        try writePictures(alloc)
        if json {
            var fields = ["\"event\": \"summary\"", "\"steps\": \(trainer.step)", "\"test_loss\": \(ProgressLine.jsonNumber(Double(test.loss)))",
                          "\"output\": \"\(dir.path)\""]
            if let validation { fields.append("\"validation_loss\": \(ProgressLine.jsonNumber(Double(validation)))") }
            if let r = recovery {
                fields.append("\"allocation_cell_accuracy\": \(ProgressLine.jsonNumber(Double(r.cellAccuracy)))")
                fields.append("\"allocation_exact_rows\": \(ProgressLine.jsonNumber(Double(r.exactRowAccuracy)))")
            }
            console.print("{" + fields.joined(separator: ", ") + "}")
            return
        }
        console.print("")
        if let alloc {
            console.print("Learned allocation (task x skill, eval-mode routing averaged over splits and layers):")
            var map = TerminalHeatmap(rowLabels: spec.taskNames, columnLabels: (0..<alloc[0].count).map { "s\($0)" }, values: alloc)
            map.range = 0...(alloc.flatMap { $0 }.max() ?? 1)
            map.color = console.isTerminal
            console.write(map.render())
            if let r = recovery {
                let rows = Int((r.exactRowAccuracy * Float(alloc.count)).rounded())
                console.print("Recovery of the true allocation: \(formatFixed(Double(r.cellAccuracy) * 100, digits: 1))% of cells, \(rows)/\(alloc.count) tasks exactly (skills matched by assignment, cells thresholded at 0.5)")
            }
        }
        var losses = "Test loss (MSE): \(formatFixed(Double(test.loss), digits: 5))"
        if let validation { losses += "   validation: \(formatFixed(Double(validation), digits: 5))" }
        console.print(losses)
        console.print("Wrote \(dir.path)/: adapter_config.json, adapter_model.safetensors (PEFT format), allocation.svg, loss.svg, checkpoint/")
    }

    func writePictures(_ alloc: [[Float]]?) throws {
        var series = [SVGLinePlot.Series(name: "training", points: trainer.lossHistory.enumerated().map { (Double($0.offset + 1), Double($0.element)) })]
        series.append(.init(name: "validation", points: trainer.validationHistory.map { (Double($0.step), Double($0.loss)) }))
        let loss = SVGLinePlot(title: "Loss", xLabel: "step", yLabel: "MSE", series: series, logY: true)
        try AtomicFile.write(Data(loss.render().utf8), to: dir.appendingPathComponent("loss.svg"))
        guard let alloc else { return }
        var heat = SVGHeatmap(title: "Learned task x skill allocation", rowLabels: spec.taskNames,
                              columnLabels: (0..<alloc[0].count).map { "skill \($0)" }, values: alloc.map { $0.map(Double.init) })
        heat.scaleLabel = "routing weight"
        try AtomicFile.write(Data(heat.render().utf8), to: dir.appendingPathComponent("allocation.svg"))
    }
}
