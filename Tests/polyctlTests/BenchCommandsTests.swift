import XCTest
import PolyPEFT
@testable import polyctl

/// `polyctl bench layer|train|infer` run in-process: exact help, usage errors, tiny runs ending in key=value lines.
final class BenchCommandsTests: XCTestCase {
    private func run(_ args: [String]) -> (code: Int32, console: Console) {
        let c = Console(passthrough: false)
        return (PolyCtl.run(args, console: c), c)
    }

    /// The value of the last line `key=<number>` of the output.
    private func lastValue(_ out: String, key: String, line: Int = 1) -> Double? {
        let lines = out.split(separator: "\n")
        guard lines.count >= line else { return nil }
        let l = lines[lines.count - line]
        guard l.hasPrefix(key + "=") else { return nil }
        return Double(l.dropFirst(key.count + 1))
    }

    func testTinyLayerRun() throws {
        let dump = FileManager.default.temporaryDirectory.appendingPathComponent("bench-layer-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: dump) }
        let (code, c) = run(["bench", "layer", "--in", "8", "--out", "6", "--r", "2", "--skills", "3", "--splits", "2",
                             "--tasks", "3", "--batch", "4", "--tokens", "2", "--repeat", "1", "--threads", "1",
                             "--dump", dump.path])
        XCTAssertEqual(code, 0, c.stderr)
        XCTAssertNotNil(lastValue(c.stdout, key: "overhead_train"), c.stdout)
        XCTAssertNotNil(lastValue(c.stdout, key: "overhead_infer", line: 2), c.stdout)
        XCTAssertTrue(c.stdout.hasPrefix("layer:   8 -> 6, r 2, 3 skills, 2 splits, 3 tasks, parameters mixing\n"), c.stdout)
        // The dump holds what compare_peft.py needs, with the poly output = base output + the routed update.
        let t = try Safetensors.read(dump)
        XCTAssertEqual(Set(t.keys), ["base.weight", "base.bias", "x", "grad_seed", "task_ids", "y_base", "y_poly",
                                     "poly_lora_A", "poly_lora_B", "poly_router.module_logits"])
        XCTAssertEqual(t["y_poly"]?.shape, [4, 2, 6])
        XCTAssertEqual(t["task_ids"]?.scalars, [0, 1, 2, 0])
        XCTAssertNotEqual(t["y_poly"]?.scalars, t["y_base"]?.scalars)
    }

    func testTinyLayerJSON() {
        let (code, c) = run(["bench", "layer", "--in", "4", "--out", "4", "--r", "1", "--skills", "2", "--tasks", "2",
                             "--batch", "2", "--tokens", "3", "--repeat", "1", "--mixing", "outputs", "--json"])
        XCTAssertEqual(code, 0, c.stderr)
        let first = c.stdout.split(separator: "\n").first ?? ""
        XCTAssertTrue(first.hasPrefix("{\"in\": 4, \"out\": 4, \"r\": 1, \"skills\": 2, \"splits\": 1, \"tasks\": 2,"), c.stdout)
        XCTAssertTrue(first.contains("\"train_step_dx_ms\": "), c.stdout)
        XCTAssertNotNil(lastValue(c.stdout, key: "overhead_train"), c.stdout)
    }

    func testTinyTrainAndInferRuns() {
        let (code, c) = run(["bench", "train", "--steps", "3", "--warmup", "1", "--batch-size", "16", "--threads", "1"])
        XCTAssertEqual(code, 0, c.stderr)
        XCTAssertGreaterThan(lastValue(c.stdout, key: "steps_per_s") ?? 0, 0, c.stdout)
        let (code2, i) = run(["bench", "infer", "--batch", "5", "--repeat", "1", "--threads", "1"])
        XCTAssertEqual(code2, 0, i.stderr)
        XCTAssertNotNil(lastValue(i.stdout, key: "overhead_merged"), i.stdout)
        XCTAssertNotNil(lastValue(i.stdout, key: "overhead_single", line: 2), i.stdout)
        XCTAssertNotNil(lastValue(i.stdout, key: "overhead_mixed", line: 3), i.stdout)
    }

    func testBadFlagsAreUsageErrors() {
        let cases: [([String], String)] = [
            (["bench", "layer", "--in", "10", "--splits", "4"],
             "error: --in 10 and --out 1024 must both be divisible by --splits 4\nhint: see 'polyctl bench layer --help'\n"),
            (["bench", "layer", "--mixing", "both"],
             "error: option '--mixing' must be one of parameters, outputs, got 'both'\nhint: see 'polyctl bench layer --help'\n"),
            (["bench", "layer", "--batch", "65536", "--tokens", "65536"],
             "error: the input would have 4398046511104 elements; the limit is 268435456\nhint: see 'polyctl bench layer --help'\n"),
            (["bench", "train", "--steps", "0"],
             "error: option '--steps' must be in 1...10000000, got 0\nhint: see 'polyctl bench train --help'\n"),
            (["bench", "train", "--dump", ""],
             "error: option '--dump' needs a file path\nhint: see 'polyctl bench train --help'\n"),
            (["bench", "infer", "--threads", "0"],
             "error: option '--threads' must be in 1...1024, got 0\nhint: see 'polyctl bench infer --help'\n"),
            (["bench", "infer", "--bogus"], "error: unknown option '--bogus'\nhint: see 'polyctl bench infer --help'\n"),
        ]
        for (args, message) in cases {
            let (code, c) = run(args)
            XCTAssertEqual(code, 64, "\(args)")
            XCTAssertEqual(c.stderr, message)
        }
    }

    func testHelpTexts() {
        XCTAssertEqual(run(["bench", "layer", "--help"]).console.stdout, """
            OVERVIEW: Time one Poly linear layer against its frozen base (inference and training step).

            USAGE: polyctl bench layer [--in <n>] [--out <n>] [--r <n>] [--skills <n>] [--splits <n>] [--tasks <n>] [--batch <n>] [--tokens <n>] [options]

            OPTIONS:
              --in <n>                                Input features. (default: 1024)
              --out <n>                               Output features. (default: 1024)
              --r <n>                                 LoRA rank of each skill. (default: 8)
              --skills <n>                            Skills. (default: 8)
              --splits <n>                            Splits (MHR heads). (default: 1)
              --tasks <n>                             Tasks. (default: 16)
              --batch <n>                             Sequences per batch. (default: 32)
              --tokens <n>                            Tokens per sequence. (default: 64)
              --mixing <parameters|outputs>           Mix skill parameters (PEFT) or skill outputs. (default: parameters)
              --single-task                           Give every sequence task 0 instead of mixing tasks.
              --strategy <automatic|perGroup|perRow>  Routing kernel. (default: automatic)
              --threads <t>                           Threads to use. (default: all processors or POLYPEFT_THREADS)
              --repeat <r>                            Timed rounds (each times every figure once) after one warm-up; the best is kept. (default: 5)
              --seed <n>                              Seed of weights and data. (default: 0)
              --dump <file>                           Write weights, input, task ids and first outputs to a safetensors file.
              --json                                  Print the figures as one JSON object.
              --help                                  Show help information.

            """)
        XCTAssertEqual(run(["bench", "train", "--help"]).console.stdout, """
            OVERVIEW: Time training steps of the default 'polyctl train' model on the built-in data.

            USAGE: polyctl bench train [--steps <n>] [--mixing parameters|outputs] [--threads <t>] [--json] [--dump <file>]

            OPTIONS:
              --steps <n>                             Timed optimizer steps. (default: 500)
              --warmup <n>                            Untimed steps before timing. (default: 20)
              --mixing <parameters|outputs>           Mix skill parameters (PEFT) or skill outputs. (default: outputs)
              --batch-size <n>                        Samples per step. (default: 256)
              --strategy <automatic|perGroup|perRow>  Routing kernel. (default: automatic)
              --threads <t>                           Threads to use. (default: all processors or POLYPEFT_THREADS)
              --seed <n>                              Seed of data, initialisation and batch order. (default: 0)
              --dump <file>                           Write weights, data, batch order and first outputs to a safetensors file.
              --json                                  Print the figures as one JSON object.
              --help                                  Show help information.

            """)
        XCTAssertEqual(run(["bench", "infer", "--help"]).console.stdout, """
            OVERVIEW: Time mixed-task and single-task inference of the default model against the base model.

            USAGE: polyctl bench infer [--batch <n>] [--mixing parameters|outputs] [--threads <t>] [--json] [--dump <file>]

            OPTIONS:
              --batch <n>                             Samples per forward. (default: 256)
              --mixing <parameters|outputs>           Mix skill parameters (PEFT) or skill outputs. (default: parameters)
              --strategy <automatic|perGroup|perRow>  Routing kernel. (default: automatic)
              --threads <t>                           Threads to use. (default: all processors or POLYPEFT_THREADS)
              --repeat <r>                            Timed rounds per figure (each about 20 ms of calls); the best is reported. (default: 7)
              --seed <n>                              Seed of weights and inputs. (default: 0)
              --dump <file>                           Write weights, input, task ids and outputs to a safetensors file.
              --json                                  Print the figures as one JSON object.
              --help                                  Show help information.

            """)
        let g = run(["bench", "--help"]).console.stdout
        for line in ["  layer   Time one Poly linear layer", "  train   Time training steps", "  infer   Time mixed-task"] {
            XCTAssertTrue(g.contains(line), g)
        }
    }
}
