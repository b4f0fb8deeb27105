import XCTest
@testable import polyctl
import PolyPEFT

/// Option defaults are declared once, and `validate()` rejects bad combinations before any work.
final class OptionValidationTests: XCTestCase {
    func testEveryDeclaredDefaultIsAValidValue() {
        for group in PolyCtl.groups {
            for command in group.commands {
                for option in command.options {
                    guard let d = option.defaultValue else { continue }
                    XCTAssertNoThrow(try option.check(d, command: command.name), "\(command.name) --\(option.name) \(d)")
                }
            }
        }
    }

    func testValidateRunsBeforeAnyFileIsRead() {
        let cases: [([String], String)] = [
            (["export", "--adapter", "/nonexistent", "--output", "x", "--merged"], "error: '--merged' needs '--task <name>'\nhint: see 'polyctl export --help'\n"),
            (["infer", "--adapter", "/nonexistent"], "error: missing '--input <file>'\nhint: see 'polyctl infer --help'\n"),
            (["train", "--data", "/nonexistent.jsonl", "--method", "lora", "--splits", "2"],
             "error: '--splits' applies to poly and mhr, not lora\nhint: see 'polyctl train --help'\n"),
            (["experiment", "fewshot", "--k", "5,500"],
             "error: option '--k' allows at most 160 examples (the few-shot pool)\nhint: see 'polyctl experiment fewshot --help'\n"),
            (["bench", "t5", "--d-model", "100"],
             "error: --d-model 100 must be divisible by --heads 8 and by the 8 splits\nhint: see 'polyctl bench t5 --help'\n"),
            (["bench", "matmul", "--m", "65536", "--k", "65536"],
             "error: A would have 4294967296 elements; the limit is 268435456\nhint: see 'polyctl bench matmul --help'\n"),
        ]
        for (args, message) in cases {
            let c = Console(passthrough: false)
            XCTAssertEqual(PolyCtl.run(args, console: c), 64, "\(args)")
            XCTAssertEqual(c.stderr, message, "\(args)")
        }
    }

    /// Defaults read from the library's settings, shown as the settings print them.
    func testDefaultsComeFromTheLibrarySettings() {
        let help = TrainCommand.help
        XCTAssertTrue(help.contains("Learning rate of the adapter (the skills of poly, mhr). (default: \(TrainingConfiguration().learningRate))"), help)
        XCTAssertTrue(help.contains("Optimizer steps. (default: \(TrainingConfiguration().steps))"), help)
        XCTAssertTrue(ExperimentFewShot.help.contains("Full-batch steps of each adaptation. (default: \(FewShotSettings().steps))"))
        let parsed = try! ParsedArguments(command: "train", arguments: [], options: TrainCommand.options, maxPositionals: 0)
        XCTAssertEqual(parsed.float("lr"), TrainingConfiguration().learningRate)
        XCTAssertEqual(parsed.float("router-lr"), TrainingConfiguration().routerLearningRate)
        XCTAssertNil(parsed.optionalInt("splits"))
    }
}
