import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class PolyMergeTests: XCTestCase {
    func testMergeUnmergeRoundTripAndOtherTasksThrow() throws {
        let x = randomTensor([4, 6], seed: 6)
        for mixing in MixingMode.allCases {
            for splits in [1, 2] {
                let peft = try routingTestModel(splits: splits, mixing: mixing)
                let weights = peft.polyLayers.map { $0.layer.baseLayer.weight.value }
                let all = try forward(peft, x, .inference(taskIDs: [0, 1, 2, 1])).value
                let task1 = try forward(peft, x, .inference(taskIDs: [1, 1, 1, 1])).value
                try peft.merge(task: 1)
                XCTAssertEqual(peft.mergedTask, 1)
                XCTAssertNotEqual(peft.polyLayers[0].layer.baseLayer.weight.value, weights[0])
                assertClose(try forward(peft, x, .inference(taskIDs: [1, 1, 1, 1])).value, task1, rtol: 1e-5, atol: 1e-5, "\(mixing) S=\(splits) merged")
                XCTAssertThrowsError(try forward(peft, x, .inference(taskIDs: [1, 0, 1, 1]))) {
                    XCTAssertEqual("\($0)", "fc1: task 1 is merged into the base weight; a forward for task 0 needs unmerge() first")
                }
                XCTAssertThrowsError(try forward(peft, x, Context(mode: .train, taskIDs: [1, 1, 1, 1]))) {
                    XCTAssertEqual("\($0)", "fc1: task 1 is merged into the base weight; unmerge before training")
                }
                let disabled = Context.inference(taskIDs: [1, 1, 1, 1])
                disabled.adaptersEnabled = false
                XCTAssertThrowsError(try forward(peft, x, disabled)) {
                    XCTAssertEqual("\($0)", "fc1: task 1's update is merged into the base weight; unmerge() before running with adapters disabled")
                }
                XCTAssertThrowsError(try peft.merge(task: 2)) { XCTAssertEqual("\($0)", "fc1: task 1 is already merged; unmerge it first") }
                XCTAssertEqual(peft.mergedTask, 1)
                try peft.unmerge()
                XCTAssertNil(peft.mergedTask)
                for (w, (_, l)) in zip(weights, peft.polyLayers) { assertClose(l.baseLayer.weight.value, w, rtol: 1e-6, atol: 1e-6) }
                assertClose(try forward(peft, x, .inference(taskIDs: [0, 1, 2, 1])).value, all, rtol: 1e-5, atol: 1e-5, "\(mixing) S=\(splits) unmerged")
            }
        }
        let peft = try routingTestModel()
        try peft.merge(task: "c", in: try TaskTable(["a", "b", "c"]))
        XCTAssertEqual(peft.mergedTask, 2)
        XCTAssertThrowsError(try peft.merge(task: "z", in: try TaskTable(["a", "b", "c"])))
    }
}
