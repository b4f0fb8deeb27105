import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

/// Every JSON line polyctl prints goes through `JSONField`: names that need escaping keep the output valid.
final class JSONOutputTests: XCTestCase {
    func testLineEscapesKeysAndStringsAndKeepsOrder() throws {
        let line = JSONField.line([("task a\"b", .string("x\\y\n")), ("n", .int(3)), ("f", .fixed(1.5, digits: 3)),
                                   ("nan", .fixed(.nan, digits: 3)), ("s", .shortest(0.25)), ("i", .shortest(2000)),
                                   ("o", .object([("b", .bool(true)), ("a", .null)]))])
        XCTAssertEqual(line, #"{"task a\"b": "x\\y\n", "n": 3, "f": 1.500, "nan": null, "s": 0.25, "i": 2000, "o": {"b": true, "a": null}}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        XCTAssertEqual(parsed["task a\"b"] as? String, "x\\y\n")
    }

    /// `train --json` and `eval --json` on data with a task named `a"b`: every line parses.
    func testTrainAndEvalJSONWithAQuoteInATaskName() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("json-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        var lines: [String] = []
        for i in 0..<60 {
            let x = (0..<4).map { j in Double((i * 7 + j * 3) % 11) / 11 - 0.5 }
            let task = i % 2 == 0 ? "a\\\"b" : "plain"                        // a"b, escaped in the JSONL file
            lines.append("{\"input\": [\(x.map { "\($0)" }.joined(separator: ", "))], \"target\": [\(x[0] + x[1]), \(x[2])], \"task\": \"\(task)\"}")
        }
        let data = root.appendingPathComponent("d.jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: data)
        let dir = root.appendingPathComponent("run").path
        let c = Console(passthrough: false)
        let code = PolyCtl.run(["train", "--data", data.path, "--steps", "12", "--eval-every", "6", "--batch-size", "8",
                                "--no-baseline", "--json", "--output", dir], console: c)
        XCTAssertEqual(code, 0, c.stderr)
        let objects = try c.stdout.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let validation = objects.filter { $0["event"] as? String == "validation" }
        XCTAssertFalse(validation.isEmpty, c.stdout)
        XCTAssertEqual((validation[0]["tasks"] as! [String: Any]).keys.sorted(), ["a\"b", "plain"])
        XCTAssertEqual(objects.last?["event"] as? String, "summary")
        XCTAssertEqual(objects.last?["output"] as? String, dir)
        XCTAssertGreaterThan(objects.last?["trainable_parameters"] as? Int ?? 0, 0)
        let e = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["eval", "--adapter", dir, "--data", data.path, "--json"], console: e), 0, e.stderr)
        let eval = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((eval["tasks"] as! [[String: Any]]).map { $0["task"] as! String }.sorted(), ["a\"b", "plain"])

        // A relative --data path is recorded as an absolute one, so eval finds the data from another directory.
        let fm = FileManager.default, cwd = fm.currentDirectoryPath
        defer { _ = fm.changeCurrentDirectoryPath(cwd) }
        let relativeRun = root.appendingPathComponent("relative").path
        XCTAssertTrue(fm.changeCurrentDirectoryPath(root.path))
        let t = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["train", "--data", "d.jsonl", "--steps", "2", "--no-baseline", "--output", relativeRun],
                                   console: t), 0, t.stderr)
        XCTAssertTrue(fm.changeCurrentDirectoryPath(NSTemporaryDirectory()))
        let r = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["eval", "--adapter", relativeRun, "--json"], console: r), 0, r.stderr)
    }
}
