import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class PolyExportTests: XCTestCase {
    /// The exported LoRA, loaded into a fresh base with `PeftModel.load`, reproduces the routed outputs of its task.
    func testTaskLoRARoundTripBothMixingModesAndSplits() throws {
        let x = randomTensor([5, 6], seed: 3)
        for mixing in MixingMode.allCases {
            for splits in [1, 2] {
                let peft = try routingTestModel(splits: splits, mixing: mixing)
                let dir = temporaryDirectory()
                defer { try? FileManager.default.removeItem(at: dir) }
                for task in 0..<3 {
                    let folder = dir.appendingPathComponent("t\(task)")
                    try peft.exportTaskLoRA(task: task, to: folder)
                    let lora = try PeftModel.load(from: folder, into: try routingTestMLP())
                    guard let c = lora.config as? LoraConfig else { return XCTFail("not a LoRA config") }
                    XCTAssertEqual(c.r, mixing == .parameters ? 2 : 6, "\(mixing)")
                    XCTAssertEqual(c.loraAlpha, mixing == .parameters ? 1 : 3, "\(mixing)")
                    XCTAssertEqual(c.targetModules, .names(["fc1", "fc2"]))
                    let routed = try forward(peft, x, .inference(taskIDs: Array(repeating: task, count: 5))).value
                    let plain = try forward(lora, x, .inference()).value
                    assertClose(plain, routed, rtol: 1e-5, atol: 1e-5, "\(mixing) S=\(splits) task \(task)")
                    // The LoRA differs from the other tasks' outputs (the check above can fail).
                    let other = try forward(peft, x, .inference(taskIDs: Array(repeating: (task + 1) % 3, count: 5))).value
                    XCTAssertGreaterThan(try (plain - other).abs().max().scalarValue, 1e-3)
                }
            }
        }
    }

    func testConfigIsPEFTLoRA() throws {
        let peft = try routingTestModel(mixing: .outputs)
        let (config, tensors) = try peft.taskLoRAAdapter(task: 1)
        let json = config.json
        XCTAssertEqual(json["peft_type"], "LORA")
        XCTAssertEqual(json["r"], 6)
        XCTAssertEqual(json["lora_alpha"], 3)
        XCTAssertEqual(Set(tensors.keys), ["base_model.model.fc1.lora_A.weight", "base_model.model.fc1.lora_B.weight",
                                           "base_model.model.fc2.lora_A.weight", "base_model.model.fc2.lora_B.weight"])
        XCTAssertEqual(tensors["base_model.model.fc1.lora_A.weight"]!.shape, [6, 6])
        XCTAssertEqual(tensors["base_model.model.fc1.lora_B.weight"]!.shape, [8, 6])
        XCTAssertThrowsError(try peft.taskLoRAAdapter(task: 3)) { XCTAssertEqual("\($0)", "fc1: task id 3 is out of range 0..<3") }
    }

    func testExportEveryTaskOfATable() throws {
        let peft = try routingTestModel()
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tasks = try TaskTable(["cola", "sst2", "rte"])
        let folders = try peft.exportTaskLoRAs(tasks, to: dir)
        XCTAssertEqual(folders.map(\.lastPathComponent), ["cola", "sst2", "rte"])
        let x = randomTensor([2, 6], seed: 1)
        for (id, folder) in folders.enumerated() {
            let lora = try PeftModel.load(from: folder, into: try routingTestMLP())
            assertClose(try forward(lora, x, .inference()).value, try forward(peft, x, .inference(taskIDs: [id, id])).value, rtol: 1e-5, atol: 1e-5)
        }
        // By name, with research routing options (hard routing, shared skill) that the LoRA bakes in.
        let hard = try routingTestModel(mixing: .outputs, routing: RoutingOptions(straightThrough: true, sharedSkill: true))
        let one = try hard.exportTaskLoRA(task: "sst2", in: tasks, to: dir.appendingPathComponent("hard"))
        let hardLoRA = try PeftModel.load(from: one, into: try routingTestMLP())
        assertClose(try forward(hardLoRA, x, .inference()).value, try forward(hard, x, .inference(taskIDs: [1, 1])).value, rtol: 1e-5, atol: 1e-5)
        XCTAssertThrowsError(try hard.exportTaskLoRA(task: "qqp", in: tasks, to: dir)) {
            XCTAssertEqual("\($0)", "unknown task 'qqp' (known tasks: 'cola', 'sst2', 'rte')")
        }
        XCTAssertThrowsError(try peft.exportTaskLoRAs(try TaskTable(["a", "b"]), to: dir)) {
            XCTAssertEqual("\($0)", "export: the task table names 2 tasks, the adapter has 3")
        }
        XCTAssertThrowsError(try peft.exportTaskLoRAs(try TaskTable(["a", "b/c", "d"]), to: dir)) {
            XCTAssertEqual("\($0)", "export: task name 'b/c' cannot be used as a folder name")
        }
    }
}
