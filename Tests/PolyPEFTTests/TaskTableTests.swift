import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class TaskTableTests: XCTestCase {
    func testNamesIdsAndErrors() throws {
        var t = try TaskTable(["cola", "sst2", "rte"])
        XCTAssertEqual(t.count, 3)
        XCTAssertEqual(try t.id(of: "sst2"), 1)
        XCTAssertEqual(try t.name(of: 2), "rte")
        XCTAssertEqual(try t.ids(for: ["rte", "cola", "rte"]), [2, 0, 2])
        XCTAssertThrowsError(try t.id(of: "mnli")) { XCTAssertEqual("\($0)", "unknown task 'mnli' (known tasks: 'cola', 'sst2', 'rte')") }
        XCTAssertThrowsError(try t.ids(for: ["cola", "qqp"])) { XCTAssertEqual("\($0)", "unknown task 'qqp' (known tasks: 'cola', 'sst2', 'rte')") }
        XCTAssertEqual(try t.ids(for: ["cola", "qqp"], unknown: .uniform), [0, TaskTable.unknownID])
        XCTAssertThrowsError(try t.name(of: 3)) { XCTAssertEqual("\($0)", "task id 3 is out of range 0..<3") }
        XCTAssertThrowsError(try TaskTable(["a", "b", "a"])) { XCTAssertEqual("\($0)", "task table: duplicate task name 'a'") }
        XCTAssertThrowsError(try TaskTable([""])) { XCTAssertEqual("\($0)", "task table: a task name must not be empty") }
        XCTAssertEqual(try t.append("mnli"), 3)
        XCTAssertThrowsError(try t.append("cola"))
        XCTAssertEqual(TaskTable.numbered(2).names, ["task0", "task1"])
    }

    func testFileRoundTripAndErrors() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try TaskTable(["qa", "nli", "caf\u{e9}"])
        try t.write(to: dir)
        let text = try String(contentsOf: dir.appendingPathComponent("polypeft_tasks.json"), encoding: .utf8)
        XCTAssertEqual(text, "{\n  \"format\": \"polypeft-task-table\",\n  \"tasks\": [\n    \"qa\",\n    \"nli\",\n    \"caf\\u00e9\"\n  ],\n  \"version\": 1\n}")
        XCTAssertEqual(try TaskTable.read(from: dir), t)
        try "{\"format\": \"polypeft-task-table\", \"version\": 1, \"tasks\": [\"a\", \"a\"]}".write(
            to: dir.appendingPathComponent("polypeft_tasks.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TaskTable.read(from: dir)) { XCTAssertTrue("\($0)".hasSuffix("polypeft_tasks.json: task table: duplicate task name 'a'"), "\($0)") }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("polypeft_tasks.json"))
        XCTAssertThrowsError(try TaskTable.read(from: dir)) { XCTAssertTrue("\($0)".contains("missing polypeft_tasks.json"), "\($0)") }
    }

    func testSavedNextToAdapterAndIgnoredByLoad() throws {
        let peft = try routingTestModel()
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tasks = try TaskTable(["a", "b", "c"])
        XCTAssertThrowsError(try peft.save(to: dir, tasks: try TaskTable(["a"]))) {
            XCTAssertEqual("\($0)", "save: the task table names 1 tasks, the adapter has 3")
        }
        try peft.save(to: dir, tasks: tasks)
        XCTAssertEqual(try TaskTable.read(from: dir), tasks)
        let reloaded = try PeftModel.load(from: dir, into: try routingTestMLP())
        let x = randomTensor([3, 6], seed: 2)
        let ids = try tasks.ids(for: ["c", "a", "b"])
        XCTAssertEqual(try forward(reloaded, x, .inference(taskIDs: ids)).value, try forward(peft, x, .inference(taskIDs: ids)).value)
    }
}
