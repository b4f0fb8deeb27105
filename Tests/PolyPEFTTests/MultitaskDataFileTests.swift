import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class MultitaskDataFileTests: XCTestCase {
    func parse(_ text: String, _ format: MultitaskDataFile.Format, names: [String]? = nil,
               unknown: MultitaskDataFile.UnknownTaskPolicy = .error, inputDim: Int? = nil) throws -> MultitaskDataset {
        try MultitaskDataFile.parse(text, format: format, file: "data.\(format.rawValue)", taskNames: names,
                                    unknownTasks: unknown, inputDim: inputDim)
    }

    /// Asserts that parsing fails with exactly `message`.
    func assertError(_ text: String, _ format: MultitaskDataFile.Format, _ message: String, names: [String]? = nil,
                     inputDim: Int? = nil, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text, format, names: names, inputDim: inputDim), line: line) { e in
            XCTAssertEqual("\(e)", message, line: line)
        }
    }

    func testJSONLParsesAndMapsTasksInOrderOfAppearance() throws {
        let text = """
        {"input": [1, 2.5], "target": [0.5], "task": "b"}

        {"task": "a", "input": [-1, 0], "target": [1e-3], "extra": true}\r
        {"input": [3, 4], "target": [2], "task": "b"}
        """
        let d = try parse(text, .jsonl)
        XCTAssertEqual(d.taskNames, ["b", "a"])
        XCTAssertEqual(d.taskIDs, [0, 1, 0])
        XCTAssertEqual(d.inputs.shape, [3, 2])
        XCTAssertEqual(d.inputs.scalars, [1, 2.5, -1, 0, 3, 4])
        XCTAssertEqual(d.targets.scalars, [0.5, 0.001, 2])
        // Through a given name table; integer task names are accepted.
        let e = try parse("{\"input\": [1], \"target\": [2], \"task\": 7}\n{\"input\": [1], \"target\": [2], \"task\": \"z\"}",
                          .jsonl, names: ["z", "7"])
        XCTAssertEqual(e.taskIDs, [1, 0])
        let f = try parse("{\"input\": [1], \"target\": [2], \"task\": \"new\"}", .jsonl, names: ["z"], unknown: .append)
        XCTAssertEqual(f.taskNames, ["z", "new"])
        XCTAssertEqual(f.taskIDs, [1])
    }

    func testJSONLErrorsNameFileLineAndProblem() {
        let ok = "{\"input\": [1, 2], \"target\": [3], \"task\": \"a\"}\n"
        assertError(ok + "\n{\"input\": [1], \"target\": [3], \"task\": \"a\"}", .jsonl,
                    "data.jsonl:3: \"input\" has 1 values, expected 2 (as on line 1)")
        assertError(ok, .jsonl, "data.jsonl:1: \"input\" has 2 values, expected 32", inputDim: 32)
        assertError(ok + "{\"input\": [1, 2], \"task\": \"a\"}", .jsonl, "data.jsonl:2: missing key \"target\"")
        assertError("{\"input\": [1, \"x\"], \"target\": [3], \"task\": \"a\"}", .jsonl, "data.jsonl:1: \"input\"[1] is not a number")
        assertError("{\"input\": 5, \"target\": [3], \"task\": \"a\"}", .jsonl, "data.jsonl:1: \"input\" must be an array of numbers")
        assertError("{\"input\": [1], \"target\": [3], \"task\": [1]}", .jsonl, "data.jsonl:1: \"task\" must be a string")
        assertError("[1, 2]", .jsonl, "data.jsonl:1: expected a JSON object")
        assertError(ok + "{\"input\": [1, 2], ", .jsonl, "data.jsonl:2: not valid JSON (expected a string key but found end of input at byte 18)")
        assertError(ok + "{\"input\": [1, 2], \"target\": [1e39], \"task\": \"a\"}", .jsonl,
                    "data.jsonl:2: \"target\"[0] is 1e+39, outside the Float range")
        assertError("{\"input\": [], \"target\": [3], \"task\": \"a\"}", .jsonl, "data.jsonl:1: \"input\" is empty")
        assertError(ok, .jsonl, "data.jsonl:1: unknown task \"a\" (not in the model's 1 tasks)", names: ["b"])
        assertError("\n  \n", .jsonl, "data.jsonl: no samples (empty file)")
        assertError("{\"input\": [1], \"target\": [3], \"task\": \"\"}", .jsonl, "data.jsonl:1: the task name is empty")
        assertError("{\"input\": [1], \"target\": [3], \"task\": \"a\",}", .jsonl, "data.jsonl:1: not valid JSON (expected a string key but found '}' at byte 42)")
        assertError("{\"input\": [1], \"input\": [2], \"target\": [3], \"task\": \"a\"}", .jsonl,
                    "data.jsonl:1: not valid JSON (duplicate key \"input\" at byte 15)")
        assertError("{\"input\": [1], \"target\": [3], \"task\": \" \\t\"}", .jsonl, "data.jsonl:1: the task name is empty")
    }

    func testCSVParsesQuotedFieldsAndAnyColumnOrder() throws {
        let text = "y0,task,x1,x0\r\n1.5,\"a, \"\"quoted\"\" task\",2,1\r\n\r\n-2,plain,4,3\n3,\"multi\nline\",6,5\n"
        let d = try parse(text, .csv)
        XCTAssertEqual(d.taskNames, ["a, \"quoted\" task", "plain", "multi\nline"])
        XCTAssertEqual(d.inputs.scalars, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(d.targets.scalars, [1.5, -2, 3])
        // Task names are trimmed: "t0 " and "t0" are one task.
        let trimmed = try parse("task,x0,y0\nt0 ,1,1\n\" t0\",2,2\nt1,3,3\n", .csv)
        XCTAssertEqual(trimmed.taskNames, ["t0", "t1"])
        XCTAssertEqual(trimmed.taskIDs, [0, 0, 1])
        // A UTF-8 byte-order mark is skipped.
        XCTAssertEqual(try parse("\u{FEFF}task,x0,y0\na,1,2\n", .csv).taskNames, ["a"])
        XCTAssertEqual(try parse("\u{FEFF}{\"input\": [1], \"target\": [2], \"task\": \"a\"}", .jsonl).count, 1)
    }

    func testCSVErrors() {
        assertError("task,x0,y0\na,1\n", .csv, "data.csv:2: 2 fields, but the header has 3")
        assertError("task,x0,y0\na,1,b\n", .csv, "data.csv:2: column \"y0\": \"b\" is not a number")
        assertError("task,x0,y0\na,1," + String(repeating: "z", count: 100_000) + "\n", .csv,
                    "data.csv:2: column \"y0\": \"" + String(repeating: "z", count: 40) + "... (100000 characters)\" is not a number")
        assertError("task,x0,y0\na,nan,1\n", .csv, "data.csv:2: column \"x0\": nan is not finite")
        assertError("task,x0,y0\na,1e39,1\n", .csv, "data.csv:2: column \"x0\": 1e39 is not finite")
        assertError("task,x0,y0\na,,1\n", .csv, "data.csv:2: column \"x0\" is empty")
        assertError("x0,y0\n1,1\n", .csv, "data.csv:1: header has no \"task\" column")
        assertError("task,x0,x2,y0\n", .csv, "data.csv:1: header has x2 but no x1 column")
        assertError("task,x0,y0,z\n", .csv, "data.csv:1: unknown column \"z\" (expected task, x0, x1, ..., y0, y1, ...)")
        assertError("task,x0,x0,y0\n", .csv, "data.csv:1: column \"x0\" appears twice")
        assertError("task,x0,y0\n\"a,1,1\n", .csv, "data.csv:2: unterminated quoted field")
        assertError("task,x0,y0\na\"b,1,1\n", .csv, "data.csv:2: quote inside an unquoted field (quote the whole field and double inner quotes)")
        assertError("task,x0,y0\n\"a\"b,1,1\n", .csv, "data.csv:2: unexpected text after a closing quote")
        assertError("task,x0,y0\n", .csv, "data.csv: no samples (empty file)")
        assertError("task,x0,y0\n\"  \",1,1\n", .csv, "data.csv:2: the task name is empty")
        assertError("", .csv, "data.csv: no samples (empty file)")
        assertError("task,x0,y0\n\"m\nl\",1,1\nb,2\n", .csv, "data.csv:4: 2 fields, but the header has 3")
        assertError("task,x0,y0\na,1,1\n", .csv, "data.csv:1: header has 1 input columns, expected 4", inputDim: 4)
    }

    func testFormatByExtension() throws {
        XCTAssertEqual(try MultitaskDataFile.Format(path: "/tmp/a.JSONL"), .jsonl)
        XCTAssertEqual(try MultitaskDataFile.Format(path: "b.csv"), .csv)
        XCTAssertThrowsError(try MultitaskDataFile.Format(path: "d/data.txt")) { e in
            XCTAssertEqual("\(e)", "d/data.txt: unknown data format '.txt': use .jsonl or .csv")
        }
        XCTAssertThrowsError(try MultitaskDataFile.read("/nonexistent/x.csv")) { e in
            XCTAssertEqual("\(e)", "/nonexistent/x.csv: no such file")
        }
        // A folder or a FIFO named like a data file: said so, and a FIFO is not read (it would block).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mtdf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("folder.jsonl"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("fifo.csv").path, 0o600), 0)
        for (name, what) in [("folder.jsonl", "is a folder, not a file"), ("fifo.csv", "is a FIFO, not a regular file")] {
            XCTAssertThrowsError(try MultitaskDataFile.read(dir.appendingPathComponent(name).path)) { e in
                XCTAssertEqual("\(e)", "\(dir.path)/\(name): \(what)")
            }
        }
        // A file that is not UTF-8 is reported with the line of the first bad byte.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("latin1-\(UUID().uuidString).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("task,x0,y0\na,1,1\n".utf8 + [0x63, 0xE9, 0x2C, 0x31, 0x2C, 0x31, 0x0A]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try MultitaskDataFile.read(path)) { XCTAssertEqual("\($0)", "\(path):3: not valid UTF-8") }
    }

    func testRoundTripBothFormatsThroughFiles() throws {
        var c = SyntheticTasks.Configuration()
        c.trainSamplesPerTask = 3
        c.validationSamplesPerTask = 0
        c.testSamplesPerTask = 0
        c.fewShotPoolSize = 2
        c.heldOutTestSamplesPerTask = 0
        let s = try SyntheticTasks(c)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("polypeft-datafile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for ext in ["jsonl", "csv"] {
            let path = dir.appendingPathComponent("train.\(ext)").path
            try MultitaskDataFile.write(s.train, to: path)
            let back = try MultitaskDataFile.read(path)
            XCTAssertEqual(back, s.train, ext)
            let again = try MultitaskDataFile.read(path, taskNames: s.taskNames.reversed())
            XCTAssertEqual(again.inputs, s.train.inputs)
            XCTAssertEqual(again.taskIDs.map { again.taskNames[$0] }, s.train.taskIDs.map { s.taskNames[$0] })
        }
        // Names that need quoting or escaping survive too; white space around a name does not (names are trimmed).
        let odd = try MultitaskDataset(inputs: Tensor([1, 2], shape: [2, 1]), targets: Tensor([3, 4], shape: [2, 1]),
                                       taskIDs: [0, 1], taskNames: ["a,\"b\"\nc", " tab\there "])
        let trimmed = try MultitaskDataset(inputs: odd.inputs, targets: odd.targets, taskIDs: [0, 1], taskNames: ["a,\"b\"\nc", "tab\there"])
        XCTAssertEqual(try parse(try MultitaskDataFile.csv(odd), .csv), trimmed)
        XCTAssertEqual(try parse(try MultitaskDataFile.jsonl(odd), .jsonl), trimmed)
        XCTAssertEqual(try MultitaskDataFile.csv(odd), "task,x0,y0\n\"a,\"\"b\"\"\nc\",1.0,3.0\n\" tab\there \",2.0,4.0\n")
        XCTAssertEqual(try MultitaskDataFile.jsonl(odd),
                       "{\"input\": [1.0], \"target\": [3.0], \"task\": \"a,\\\"b\\\"\\nc\"}\n{\"input\": [2.0], \"target\": [4.0], \"task\": \" tab\\there \"}\n")
    }
}
