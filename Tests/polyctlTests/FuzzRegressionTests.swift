import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

/// Minimal reproducers of the defects the fuzzer (`Benchmarks/fuzz/fuzz.py`, issue 19) found: each made polyctl trap
/// or run without end, and is now an error naming the file or key (a huge loss is printed in exponent notation).
final class FuzzRegressionTests: CLITestCase {
    /// The fuzzer's seed runs.
    let seedRun = ["--steps", "30", "--batch-size", "32", "--eval-every", "10", "--no-baseline", "--quiet"]

    /// Trains `root/name` with `args` (stopped after 10 steps when asked: exit 130) and returns its path.
    func train(_ name: String, _ args: [String]) -> String {
        let dir = root.appendingPathComponent(name).path
        let t = run(["train"] + seedRun + args + ["--output", dir])
        XCTAssertEqual(t.code, args.contains("--stop-after") ? 130 : 0, t.err)
        return dir
    }

    /// Sets every `"key": value` in the JSON file at `path` to the JSON text `value`, the rest kept byte for byte.
    func set(_ key: String, to value: String, in path: String) throws {
        let url = URL(fileURLWithPath: path)
        var b = [UInt8](try Data(contentsOf: url))
        let fields = JSONText.fields(named: [key], in: b)
        XCTAssertFalse(fields.isEmpty, "\(path) has no \(key)")
        for f in fields.reversed() { b.replaceSubrange(f.value, with: Array(value.utf8)) }
        try Data(b).write(to: url)
    }

    /// A CSV data file of three tasks, two inputs, one target; `big` puts that value into one input.
    func writeData(_ name: String, big: String? = nil) throws -> String {
        var text = "task,x0,x1,y0\n"
        for k in 0..<30 { text += "t\(k % 3),\(Double(k % 7) / 7),\(k == 4 ? big ?? "0.5" : "0.5"),\(Double(k % 5) / 5)\n" }
        let url = root.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    /// A loss above 2^63 / 10^5 crashed `formatFixed` (Double -> Int overflow) in eval's table.
    func testHugeLossIsPrintedInExponentNotation() throws {
        XCTAssertEqual(formatFixed(1e30, digits: 5), "1e+30")
        XCTAssertEqual(formatFixed(-1e30, digits: 2), "-1e+30")
        XCTAssertEqual(formatFixed(1e13, digits: 5), "10000000000000.00000")
        XCTAssertEqual(formatFixed(1.15612, digits: 4), "1.1561")
        let dir = train("lora", ["--method", "lora", "--data", try writeData("data.csv")])
        let e = run(["eval", "--adapter", dir, "--data", try writeData("big.csv", big: "1e12")])
        XCTAssertEqual(e.code, 0, e.err)
        XCTAssertTrue(e.out.contains("e+"), e.out)
    }

    /// A target regex nested thousands of brackets deep overflowed the stack of Swift's regex parser (SIGSEGV).
    func testDeeplyNestedRegexIsAnError() throws {
        let dir = train("lora", ["--method", "lora"])
        let config = dir + "/adapter_config.json"
        let deep = String(repeating: "[", count: 5000)
        try set("target_modules", to: "\"\(deep)\"", in: config)
        for args in [["eval", "--adapter", dir], ["infer", "--adapter", dir, "--input", dir + "/base_model.safetensors"]] {
            let r = run(args)
            XCTAssertEqual(r.code, 1, args[0])
            XCTAssertTrue(r.err.hasPrefix("error: target regex '[[["), r.err.prefix(100).description)
            XCTAssertTrue(r.err.hasSuffix("' does not compile: brackets nested 5000 deep (at most 64)\n"), r.err.suffix(100).description)
        }
        try set("target_modules", to: "[\"fc1\", \"fc2\"]", in: config)
        try set("rank_pattern", to: "{\"\(deep)\": 4}", in: config)
        let r = run(["eval", "--adapter", dir])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.hasPrefix("error: pattern '[[["), r.err.prefix(100).description)
        XCTAssertTrue(r.err.hasSuffix("' does not compile: brackets nested 5000 deep (at most 64)\n"), r.err.suffix(100).description)
        // The limit is on nesting, not on brackets: escaped ones do not count.
        let nested65 = String(repeating: "[", count: 65) + "a" + String(repeating: "]", count: 65)
        XCTAssertThrowsError(try TargetModules.regex(nested65).matches("a")) { error in
            XCTAssertTrue("\(error)".contains("brackets nested 65 deep"), "\(error)")
        }
        XCTAssertTrue(try TargetModules.regex(String(repeating: "\\[", count: 100) + "(fc1|fc2)").matches(String(repeating: "[", count: 100) + "fc2"))
    }

    /// Eval and resume indexed the run's task names with the ids of the data: fewer names in polypeft_run.json (an
    /// adapter shared by all tasks has no task count to check them against), or a new task in the run's data file,
    /// was an index out of range.
    func testDataTasksMustBeTheRunsTasks() throws {
        let lora = train("lora", ["--method", "lora"])
        try set("taskNames", to: "[\"task00\"]", in: lora + "/polypeft_run.json")
        let e = run(["eval", "--adapter", lora])
        XCTAssertEqual(e.code, 1)
        XCTAssertEqual(e.err, "error: polypeft_run.json: its 1 taskNames are not the 18 tasks of the built-in data (task00, task01, task02, ...)\n")
        let data = try writeData("data.csv")
        let onData = train("data", ["--method", "lora", "--data", data, "--stop-after", "10"])
        var text = try String(contentsOfFile: data, encoding: .utf8)
        text = text.replacingOccurrences(of: "\nt1,", with: "\nnew,")
        try Data(text.utf8).write(to: URL(fileURLWithPath: data))
        for args in [["eval", "--adapter", onData], ["train", "--resume", onData, "--no-baseline"]] {
            let r = run(args)
            XCTAssertEqual(r.code, 1, args[0])
            XCTAssertEqual(r.err, "error: \(data):3: unknown task \"new\" (not in the model's 3 tasks)\n", args[0])
        }
    }

    /// Training settings are checked against the ranges of train's options: 2^62 steps made resume (and eval's
    /// baseline) run without end, a warm-up of Int.min overflowed, a hidden width of 10^9 allocated its size (and
    /// -1 steps trapped in the first version of this check).
    func testRunDescriptionOutsideTheOptionRangesIsAnError() throws {
        let dir = train("poly", ["--stop-after", "10"])
        let spec = dir + "/polypeft_run.json", state = dir + "/checkpoint/trainer_state.json"
        for (key, value, message) in [("steps", "4611686018427387904", "training.steps is 4611686018427387904, not in 1...10000000"),
                                      ("steps", "-1", "training.steps is -1, not in 1...10000000"),
                                      ("warmupSteps", "-9223372036854775808", "training.warmupSteps is -9223372036854775808, not in 0...30"),
                                      ("hiddenDim", "1000000000", "hiddenDim is 1000000000, not in 1...4096")] {
            let original = try Data(contentsOf: URL(fileURLWithPath: spec)), originalState = try Data(contentsOf: URL(fileURLWithPath: state))
            try set(key, to: value, in: spec)
            if key != "hiddenDim" { try set(key, to: value, in: state) }
            for args in [["train", "--resume", dir, "--no-baseline"], ["eval", "--adapter", dir, "--shots", "2"]] {
                let r = run(args)
                XCTAssertEqual(r.code, 1, "\(key) \(args[0])")
                XCTAssertEqual(r.err, "error: \(spec): \(message)\n", "\(key) \(args[0])")
            }
            try original.write(to: URL(fileURLWithPath: spec))
            try originalState.write(to: URL(fileURLWithPath: state))
        }
    }

    /// A checkpoint step below 0 trapped in the batch order, optimizerSteps of Int.max overflowed in the next step.
    func testImpossibleCheckpointStateIsAnError() throws {
        let dir = train("poly", ["--stop-after", "10"])
        let state = dir + "/checkpoint/trainer_state.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: state))
        for (key, value, message) in [("step", "-5", "checkpoint step is -5, not in 0...30"),
                                      ("step", "31", "checkpoint step is 31, not in 0...30"),
                                      ("optimizerSteps", "9223372036854775807",
                                       "checkpoint optimizerSteps is 9223372036854775807, not in 0...10 (its step)")] {
            try set(key, to: value, in: state)
            let r = run(["train", "--resume", dir, "--quiet", "--no-baseline"])
            XCTAssertEqual(r.code, 1, "\(key) \(value)")
            XCTAssertEqual(r.err, "error: \(state): \(message)\n")
            try original.write(to: URL(fileURLWithPath: state))
        }
        XCTAssertEqual(run(["train", "--resume", dir, "--quiet", "--no-baseline"]).code, 0)
    }

    /// A safetensors input with no rows printed nothing and exited 0; no inputs is an error, as for JSONL.
    func testInferWithoutRowsIsAnError() throws {
        let dir = train("lora", ["--method", "lora"])
        let input = root.appendingPathComponent("x.safetensors")
        try Safetensors.write(["x": Tensor.zeros([0, 32])], to: input)
        let r = run(["infer", "--adapter", dir, "--input", input.path])
        XCTAssertEqual(r.code, 1)
        XCTAssertEqual(r.err, "error: \(input.path): no inputs (x has shape [0, 32])\n")
    }
}
