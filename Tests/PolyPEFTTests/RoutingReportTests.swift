import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class RoutingReportTests: XCTestCase {
    func testPerLayerAndAggregateAllocation() throws {
        let peft = try routingTestModel(splits: 2, skills: 3)
        // Task t uses skill t in both splits of fc1; fc2 the same with weaker logits.
        for (i, (_, layer)) in peft.polyLayers.enumerated() {
            let big: Float = i == 0 ? 6 : 3
            var l = [Float](repeating: -big, count: 18)
            for t in 0..<3 { for s in 0..<2 { l[t * 6 + s * 3 + t] = big } }
            layer.router.moduleLogits.value = Tensor(l, shape: [3, 6])
        }
        let tasks = try TaskTable(["x", "y", "z"])
        let report = try peft.routingReport(tasks: tasks)
        XCTAssertEqual(report.taskNames, ["x", "y", "z"])
        XCTAssertEqual(report.layers.map(\.path), ["fc1", "fc2"])
        let s6 = 1 / (1 + exp(-6.0)), s3 = 1 / (1 + exp(-3.0))
        XCTAssertEqual(Double(report.layers[0].probabilities[1][1]), s6, accuracy: 1e-6)
        XCTAssertEqual(Double(report.layers[1].probabilities[1][0]), 1 - s3, accuracy: 1e-6)
        XCTAssertEqual(Double(report.aggregate.probabilities[2][2]), (s6 + s3) / 2, accuracy: 1e-6)
        for row in report.aggregate.allocation { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5) }
        XCTAssertEqual(report.aggregate.summary.effectiveSkillCount, 3, accuracy: 1e-3)
        XCTAssertGreaterThan(report.layers[0].summary.discreteness, report.layers[1].summary.discreteness)
        // Skills are unordered: a permuted truth is recovered exactly, a wrong one is not.
        XCTAssertEqual(try report.recovery(truth: [[0, 1, 0], [0, 0, 1], [1, 0, 0]]).exactRowAccuracy, 1)
        XCTAssertLessThan(try report.recovery(truth: [[1, 1, 0], [0, 0, 1], [1, 0, 0]]).exactRowAccuracy, 1)
        XCTAssertThrowsError(try peft.routingReport(tasks: try TaskTable(["x"]))) {
            XCTAssertEqual("\($0)", "routing report: the task table names 1 tasks, the adapter has 3")
        }
    }
}
