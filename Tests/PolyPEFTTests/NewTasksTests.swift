import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class NewTasksTests: XCTestCase {
    func testTrainableParameterCounts() throws {
        var g = Xoshiro256(seed: 1)
        // S = 2, K = 2: adapters 128 + base 102; one new task adds 2 layers x 4 logits.
        let z = try routingTestModel(splits: 2, skills: 2)
        XCTAssertThrowsError(try z.newTaskTraining(.routingOnly, using: &g)) {
            XCTAssertEqual("\($0)", "newTaskTraining(routingOnly): no new tasks; call addTasks first")
        }
        XCTAssertEqual(try z.addTasks(1, using: &g), 3..<4)
        let zt = try z.newTaskTraining(.routingOnly, using: &g)
        XCTAssertEqual(zt.trainableCount, 8)
        XCTAssertEqual(zt.summary, "trainable params: 8 || all params: 238 || trainable%: 3.3613")
        XCTAssertEqual(zt.groups.map(\.name), ["router"])
        XCTAssertEqual(zt.groups[0].parameters.map(\.name), ["base_model.model.fc1.poly_router.new_module_logits",
                                                             "base_model.model.fc2.poly_router.new_module_logits"])
        let full = try routingTestModel(splits: 2, skills: 2)
        try full.addTasks(1, using: &g)
        let ft = try full.newTaskTraining(.full, using: &g)
        XCTAssertEqual(ft.summary, "trainable params: 112 || all params: 238 || trainable%: 47.0588")
        XCTAssertEqual(ft.groups.map(\.name), ["router", "skills"])
        let mu = try routingTestModel(splits: 2, skills: 2)
        let mt = try mu.newTaskTraining(.averagedSkills, using: &g)
        // LoRA r = 2: fc1 12 + 16, fc2 16 + 8.
        XCTAssertEqual(mt.summary, "trainable params: 52 || all params: 154 || trainable%: 33.7662")
    }

    /// Zero-initialised rows route exactly uniformly; with parameter mixing that is the skill average, which is what
    /// the MHR-mu LoRA computes.
    func testUniformRowsAndAveragedSkillsAgree() throws {
        var g = Xoshiro256(seed: 2)
        let peft = try routingTestModel()
        let id = try peft.addTasks(1, initialization: .uniform, using: &g).lowerBound
        XCTAssertEqual(peft.taskCount, 4)
        let w = try peft.polyLayers[0].layer.routingWeights()
        for s in 0..<2 { for k in 0..<3 { XCTAssertEqual(w[3, s, k], 1.0 / 3, accuracy: 1e-6) } }
        let x = randomTensor([3, 6], seed: 3)
        let routed = try forward(peft, x, .inference(taskIDs: [id, id, id])).value
        let lora = try peft.averagedSkillsLoRA(using: &g)
        assertClose(try forward(lora, x, .inference()).value, routed, rtol: 1e-5, atol: 1e-6)
    }

    /// A few steps on a tiny synthetic problem lower the loss in every mode.
    func testFineTuningLowersLoss() throws {
        let x = randomTensor([16, 6], seed: 4)
        for mode in NewTaskMode.allCases {
            var g = Xoshiro256(seed: 5)
            let peft = try routingTestModel(splits: 2, skills: 3)
            let id = try peft.addTasks(1, using: &g).lowerBound
            // Target: the model routed by a sharp, made-up allocation for the new task.
            let saved = peft.polyLayers.map { $0.layer.router.newLogits!.value }
            for (_, l) in peft.polyLayers { l.router.newLogits!.value = Tensor([4, -4, -4, -4, 4, -4], shape: [1, 6]) }
            let target = try forward(peft, x, .inference(taskIDs: Array(repeating: id, count: 16))).value
            for ((_, l), v) in zip(peft.polyLayers, saved) { l.router.newLogits!.value = v }
            let setup = try peft.newTaskTraining(mode, routerLearningRate: 0.2, skillLearningRate: 0.05, using: &g)
            let opt = Adam(setup.groups)
            func loss(_ mode: Context.Mode, seed: UInt64 = 0) throws -> Variable {
                let ctx = Context(mode: mode, taskIDs: Array(repeating: id, count: 16), rng: Xoshiro256(seed: seed))
                return try Loss.mse(try forward(setup.model, x, ctx), target)
            }
            let before = try loss(.eval).value.scalarValue
            for step in 0..<40 {
                opt.zeroGrad()
                try loss(.train, seed: UInt64(step)).backward()
                opt.step()
            }
            let after = try loss(.eval).value.scalarValue
            XCTAssertLessThan(after, 0.5 * before, "\(mode): \(before) -> \(after)")
        }
    }

    func testOnlyNewRowsChangeInRoutingOnlyModeAndSaveFoldsThem() throws {
        var g = Xoshiro256(seed: 6)
        let peft = try routingTestModel()
        var tasks = try TaskTable(["a", "b", "c"])
        XCTAssertEqual(try peft.addTasks(named: ["d"], to: &tasks, using: &g), [3])
        XCTAssertThrowsError(try peft.addTasks(named: ["a"], to: &tasks, using: &g)) { XCTAssertEqual("\($0)", "task table: duplicate task name 'a'") }
        XCTAssertEqual(peft.taskCount, 4)
        let before = peft.adapterParameters().filter { !$0.key.hasSuffix("new_module_logits") }.map { $0.parameter.value }
        let setup = try peft.newTaskTraining(.routingOnly, using: &g)
        let opt = Adam(setup.groups)
        let x = randomTensor([4, 6], seed: 7)
        for _ in 0..<3 {
            opt.zeroGrad()
            try (try forward(peft, x, Context(mode: .train, taskIDs: [3, 3, 3, 3]))).squared().sum().backward()
            opt.step()
        }
        let after = peft.adapterParameters().filter { !$0.key.hasSuffix("new_module_logits") }.map { $0.parameter.value }
        XCTAssertEqual(before, after)
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir, tasks: tasks)
        XCTAssertEqual(try peft.adapterTensors()["base_model.model.fc1.poly_router.module_logits"]?.shape, [4, 6])
        XCTAssertNil(try peft.adapterTensors()["base_model.model.fc1.poly_router.new_module_logits"])
        let re = try PeftModel.load(from: dir, into: try routingTestMLP())
        XCTAssertEqual(re.taskCount, 4)
        XCTAssertEqual(try TaskTable.read(from: dir).names, ["a", "b", "c", "d"])
        let ctx = Context.inference(taskIDs: try tasks.ids(for: ["d", "a", "d", "c"]))
        XCTAssertEqual(try forward(re, x, ctx).value, try forward(peft, x, ctx).value)
        try peft.commitNewTasks()
        XCTAssertNil(peft.polyLayers[0].layer.router.newLogits)
        XCTAssertEqual(peft.polyLayers[0].layer.router.moduleLogits.value.shape, [4, 6])
        XCTAssertEqual(try forward(re, x, ctx).value, try forward(peft, x, ctx).value)
    }
}
