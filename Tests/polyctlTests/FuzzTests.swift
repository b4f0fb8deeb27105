import Foundation
import XCTest
@testable import polyctl
import PolyPEFT

/// The seeded quick version of `Benchmarks/fuzz/fuzz.py` (issue 19): mutants of every file polyctl reads back
/// (adapter and base safetensors, adapter_config.json, polypeft_run.json, the checkpoint, JSONL / CSV data, infer
/// inputs), made here from small runs trained in-process, each run in-process through the commands that read it.
/// Every run must end in success (exit 0; infer printing one JSON object per line) or a clean error (exit 1 or 64,
/// stderr starting with "error: "). A crash kills the test runner, which fails the suite as well.
final class FuzzTests: XCTestCase {
    /// Mutants per run of the test, and the seed of their generator.
    static let mutants = 500
    static let seed: UInt64 = 19

    func testSeededMutantsEndInSuccessOrCleanError() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("polyctl-fuzz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let seeds = try FuzzSeeds(root: root.appendingPathComponent("seeds"))
        var mutator = FuzzMutator(rng: Xoshiro256(seed: FuzzTests.seed))
        var tally: [String: Int] = [:]
        for i in 0..<FuzzTests.mutants {
            let dir = root.appendingPathComponent("mutant\(i)")
            let mutant = try mutator.mutant(of: seeds, in: dir)
            for args in mutant.commands {
                let (outcome, problem) = FuzzTests.run(args)
                tally[outcome, default: 0] += 1
                if let problem {
                    XCTFail("mutant \(i) (\(mutant.description)): polyctl \(args.joined(separator: " ")): \(problem)")
                }
            }
            try FileManager.default.removeItem(at: dir)
        }
        // Not all mutants may fail early: a good share must get through the readers to real work.
        XCTAssertGreaterThan(tally["success", default: 0], FuzzTests.mutants / 5, "\(tally)")
        XCTAssertGreaterThan(tally["clean error", default: 0], FuzzTests.mutants / 2, "\(tally)")
    }

    /// Runs polyctl in-process: "success" or "clean error", and what is wrong when it is neither.
    static func run(_ args: [String]) -> (outcome: String, problem: String?) {
        let console = Console(passthrough: false)
        let code = PolyCtl.run(args, console: console)
        switch code {
        case 0:
            return ("success", args[0] == "infer" ? inferOutputProblem(console.stdout) : nil)
        case 1, 64:
            let clean = console.stderr.hasPrefix("error: ")
            return ("clean error", clean ? nil : "exit \(code) with stderr \(console.stderr.prefix(300).debugDescription)")
        default:
            return ("other", "exit \(code): \(console.stderr.prefix(300))")
        }
    }

    /// Why infer's output is not one `{"output": [...]}` JSON object per line (JSONSerialization refuses NaN).
    static func inferOutputProblem(_ stdout: String) -> String? {
        let lines = stdout.split(separator: "\n")
        guard !lines.isEmpty else { return "exit 0 without output" }
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            guard object?["output"] is [Any] else { return "output line \(line.prefix(120)) is not {\"output\": [...]}" }
        }
        return nil
    }
}

/// Small runs trained in-process, the data files one of them trains on, and good infer inputs.
struct FuzzSeeds {
    struct Run {
        let name: String
        let folder: URL
        let routed: Bool
        let tasks: [String]
        /// Input width of the base network.
        let width: Int
        /// Whether it trains on `data.jsonl` (else on the built-in data).
        let onData: Bool
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    let root: URL
    let runs: [Run]

    static let tiny = ["--steps", "30", "--batch-size", "32", "--eval-every", "10", "--no-baseline", "--quiet"]
    static let dataTasks = ["alpha", "beta", "gamma"]

    init(root: URL) throws {
        self.root = root
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FuzzSeeds.writeData(in: root)
        let data = root.appendingPathComponent("data.jsonl").path
        let plans: [(name: String, args: [String])] = [
            ("poly", ["--stop-after", "10"]), ("lora", ["--method", "lora"]), ("ia3", ["--method", "ia3", "--stop-after", "10"]),
            ("data", ["--data", data, "--method", "mhr", "--splits", "2", "--stop-after", "10"]),
        ]
        runs = try plans.map { try FuzzSeeds.train($0.name, $0.args, in: root) }
        for width in Set(runs.map(\.width)) { try FuzzSeeds.writeInputs(width: width, in: root) }
    }

    /// Trains one seed run into `root/runs/name` and reads back what its mutants need.
    static func train(_ name: String, _ args: [String], in root: URL) throws -> Run {
        let folder = root.appendingPathComponent("runs/\(name)")
        let console = Console(passthrough: false)
        let code = PolyCtl.run(["train"] + tiny + args + ["--output", folder.path], console: console)
        guard code == (args.contains("--stop-after") ? 130 : 0) else { throw Failure(description: "seed \(name): exit \(code) \(console.stderr)") }
        let spec = try RunSpec.read(from: folder)
        let width = try SafetensorsFile(contentsOf: folder.appendingPathComponent(RunSpec.baseWeightsFileName)).info("fc1.weight").shape[1]
        return Run(name: name, folder: folder, routed: spec.method.isRouted, tasks: spec.taskNames, width: width, onData: spec.dataPath != nil)
    }

    /// `data.jsonl` and `data.csv` with the same 60 samples: three tasks, 6 inputs, 2 targets.
    static func writeData(in root: URL) throws {
        var g = Xoshiro256(seed: 7)
        var jsonl = "", csv = "task,x0,x1,x2,x3,x4,x5,y0,y1\n"
        for k in 0..<60 {
            let x = (0..<6).map { _ in Float(Int.random(in: -1000...1000, using: &g)) / 1000 }
            let task = dataTasks[k % 3]
            let y = [x[0] + x[2] - x[4], Float(k % 3) * x[1]]
            jsonl += "{\"input\": \(x), \"target\": \(y), \"task\": \"\(task)\"}\n"
            csv += ([task] + (x + y).map { "\($0)" }).joined(separator: ",") + "\n"
        }
        try Data(jsonl.utf8).write(to: root.appendingPathComponent("data.jsonl"))
        try Data(csv.utf8).write(to: root.appendingPathComponent("data.csv"))
    }

    /// `inputs-<width>/input.jsonl` and `input.safetensors` (tensor "x" [3, width]).
    static func writeInputs(width: Int, in root: URL) throws {
        let folder = root.appendingPathComponent("inputs-\(width)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let x = (0..<(3 * width)).map { Float(sin(Double($0) * 0.7)) }
        let lines = (0..<3).map { i in "{\"input\": \(Array(x[(i * width)..<((i + 1) * width)]))}\n" }
        try Data(lines.joined().utf8).write(to: folder.appendingPathComponent("input.jsonl"))
        try Safetensors.write(["x": Tensor(x, shape: [3, width])], to: folder.appendingPathComponent("input.safetensors"))
    }

    /// Copies `run` into `dir/run` with the data files and the inputs of its width; a run on data is pointed at the
    /// copy of `data.jsonl` in `dir`, so a mutation of that file is what it reads.
    func stage(_ run: Run, in dir: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        try fm.copyItem(at: run.folder, to: dir.appendingPathComponent("run"))
        for file in ["data.jsonl", "data.csv"] { try fm.copyItem(at: root.appendingPathComponent(file), to: dir.appendingPathComponent(file)) }
        for file in ["input.jsonl", "input.safetensors"] {
            try fm.copyItem(at: root.appendingPathComponent("inputs-\(run.width)/\(file)"), to: dir.appendingPathComponent(file))
        }
        if run.onData {
            var spec = try RunSpec.read(from: dir.appendingPathComponent("run"))
            spec.dataPath = dir.appendingPathComponent("data.jsonl").path
            try spec.write(to: dir.appendingPathComponent("run"))
        }
    }
}

/// What a mutant changes, and the commands that read it.
enum FuzzTarget: CaseIterable {
    case adapterModel, adapterConfig, runSpec, baseModel, checkpointAdapter, trainerState, optimizer
    case dataJSONL, dataCSV, inferJSONL, inferSafetensors

    /// The file, relative to the mutant's folder.
    var file: String {
        switch self {
        case .adapterModel: "run/adapter_model.safetensors"
        case .adapterConfig: "run/adapter_config.json"
        case .runSpec: "run/polypeft_run.json"
        case .baseModel: "run/base_model.safetensors"
        case .checkpointAdapter: "run/checkpoint/adapter_model.safetensors"
        case .trainerState: "run/checkpoint/trainer_state.json"
        case .optimizer: "run/checkpoint/optimizer.safetensors"
        case .dataJSONL: "data.jsonl"
        case .dataCSV: "data.csv"
        case .inferJSONL: "input.jsonl"
        case .inferSafetensors: "input.safetensors"
        }
    }

    /// How often it is drawn, relative to the others.
    var weight: Int {
        switch self {
        case .adapterModel, .adapterConfig, .runSpec: 4
        case .dataJSONL, .dataCSV, .baseModel, .trainerState: 3
        default: 2
        }
    }
}

/// A staged, mutated folder and the command lines to run on it.
struct FuzzMutant {
    let description: String
    let commands: [[String]]
}

/// Seeded mutations of polyctl's files: the kinds `Benchmarks/fuzz/fuzz.py` makes (byte damage, JSON values and
/// keys, safetensors headers and payloads, data lines and fields), fewer of each.
struct FuzzMutator {
    var rng: Xoshiro256

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(0..<xs.count)] }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    /// Draws a target and a seed run, stages the run in `dir`, mutates the target's file, and lists the commands.
    mutating func mutant(of seeds: FuzzSeeds, in dir: URL) throws -> FuzzMutant {
        let target = pick(FuzzTarget.allCases.flatMap { Array(repeating: $0, count: $0.weight) })
        let onData = [.dataJSONL, .dataCSV].contains(target)
        let run = onData ? seeds.runs.first { $0.onData }! : pick(seeds.runs)
        try seeds.stage(run, in: dir)
        let url = dir.appendingPathComponent(target.file)
        let (data, what) = try mutate(target, Data(contentsOf: url))
        try data.write(to: url)
        return FuzzMutant(description: "\(run.name) \(target.file): \(what)", commands: commands(target, run, dir))
    }

    mutating func mutate(_ target: FuzzTarget, _ data: Data) throws -> (Data, String) {
        switch target {
        case .adapterModel, .baseModel, .checkpointAdapter, .optimizer, .inferSafetensors: return try safetensors(data)
        case .adapterConfig: return json(data, keys: FuzzMutator.configKeys, additions: FuzzMutator.configAdditions)
        case .runSpec, .trainerState: return json(data, keys: FuzzMutator.runKeys)
        case .dataJSONL: return jsonl(data, keys: ["input", "target", "task"])
        case .inferJSONL: return jsonl(data, keys: ["input"])
        case .dataCSV: return csv(data)
        }
    }

    // MARK: Commands

    mutating func commands(_ target: FuzzTarget, _ run: FuzzSeeds.Run, _ dir: URL) -> [[String]] {
        let runPath = dir.appendingPathComponent("run").path, file = dir.appendingPathComponent(target.file).path
        let inspect = ["inspect", runPath] + pick([[], ["--json"], ["--numbers"]])
        let eval = ["eval", "--adapter", runPath] + pick([["--no-fewshot"], ["--no-fewshot", "--json"], ["--shots", "2"]])
        let resume = ["train", "--resume", runPath, "--no-baseline"] + pick([["--quiet"], ["--json"], []])
        switch target {
        case .adapterModel, .adapterConfig: return [inspect, eval, infer(run, dir, input: nil)]
        case .runSpec: return [inspect, eval, infer(run, dir, input: nil), resume]
        case .baseModel: return [eval, infer(run, dir, input: nil)]
        case .checkpointAdapter, .trainerState, .optimizer: return [resume]
        case .inferJSONL, .inferSafetensors: return [infer(run, dir, input: file)]
        case .dataJSONL, .dataCSV:
            let train = ["train", "--data", file, "--steps", "5", "--batch-size", "8", "--eval-every", "0", "--no-baseline", "--quiet",
                         "--output", dir.appendingPathComponent("fresh").path] + pick([[], ["--method", "lora"], ["--method", "ia3"]])
            let own = target == .dataJSONL ? [["eval", "--adapter", runPath, "--no-fewshot"], resume] : []
            return [train, ["eval", "--adapter", runPath, "--data", file, "--no-fewshot"]] + own
        }
    }

    mutating func infer(_ run: FuzzSeeds.Run, _ dir: URL, input: String?) -> [String] {
        let inputs = input ?? dir.appendingPathComponent(pick(["input.jsonl", "input.safetensors"])).path
        let task = run.routed || chance(0.2) ? pick([["--task", run.tasks[0]], ["--task", "nope", "--unknown-task", "uniform"]]) : []
        return ["infer", "--adapter", dir.appendingPathComponent("run").path, "--input", inputs] + task
    }

    // MARK: Bytes

    static let invalidUTF8: [[UInt8]] = [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0x80], [0xF4, 0x90, 0x80, 0x80]]

    /// Truncation, bit flips, invalid UTF-8, CRLF line ends, or an empty file.
    mutating func bytes(_ data: Data) -> (Data, String) {
        var b = [UInt8](data)
        switch int(0..<5) {
        case 0:
            let n = int(0..<(b.count + 1))
            return (Data(b.prefix(n)), "truncated to \(n) of \(b.count) bytes")
        case 1 where !b.isEmpty:
            for _ in 0..<int(1..<9) { b[int(0..<b.count)] ^= UInt8(1) << UInt8(int(0..<8)) }
            return (Data(b), "bits flipped")
        case 2:
            let at = int(0..<(b.count + 1))
            b.insert(contentsOf: pick(FuzzMutator.invalidUTF8), at: at)
            return (Data(b), "invalid UTF-8 at byte \(at)")
        case 3:
            return (Data(b.flatMap { $0 == 0x0A ? [0x0D, 0x0A] : [$0] }), "CRLF line ends")
        default:
            return (Data(), "empty file")
        }
    }

    // MARK: JSON

    static let configKeys: Set<String> = ["r", "n_tasks", "n_skills", "n_splits", "target_modules", "peft_type", "poly_type",
                                          "polypeft_mixing", "lora_alpha", "use_dora", "feedforward_modules", "modules_to_save",
                                          "init_weights", "init_ia3_weights", "inference_mode", "lora_dropout"]
    static let runKeys: Set<String> = ["format", "method", "mixing", "skills", "splits", "rank", "dataPath", "dataSeed", "hiddenDim",
                                       "taskNames", "steps", "batchSize", "learningRate", "evalEvery", "warmupSteps", "clipNorm",
                                       "feedforward", "step", "optimizerSteps", "optimizerKind", "state", "lossHistory",
                                       "validationSteps", "validationLosses", "seed"]
    /// Keys a config may have that the seeds' configs lack, with values to try.
    static let configAdditions = [
        "\"polypeft_routing\": {\"straight_through\": true, \"shared_skill\": true}", "\"polypeft_routing\": {\"temperature\": -1}",
        "\"rank_pattern\": {\"fc1\": 4}", "\"rank_pattern\": {\"" + String(repeating: "[", count: 5000) + "\": 4}",
        "\"alpha_pattern\": {\"fc2\": 1e400}", "\"layers_to_transform\": [0]", "\"exclude_modules\": [\"fc2\"]",
        "\"modules_to_save\": [\"fc2\"]", "\"use_dora\": true",
    ]
    /// Values (as JSON text) for any key: edges of Int and UInt64, overflowing and non-finite numbers, other kinds,
    /// deep nesting, a regex that nests thousands deep. No valid large count (a run of a million steps is no defect).
    static let values = [
        "0", "-1", "1", "3", "2147483648", "4611686018427387904", "9223372036854775807", "9223372036854775808",
        "18446744073709551616", "10000001", "-9223372036854775808", "1e400", "-1e400", "NaN", "Infinity", "1.5", "-0",
        "\"\"", "\"x\"", "\"POLY\"", "\"LORA\"", "\"IA3\"", "\"fc3\"", "\"parameters\"", "\"/nonexistent.jsonl\"", "null", "true",
        "[]", "{}", "[\"fc1\"]", "[1, 2]", "[\"a\", \"a\"]", "{\"a\": 1}", "\"\\u0000\"", "\"\u{1F642}\"",
        String(repeating: "[", count: 300) + String(repeating: "]", count: 300),
        String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
        "\"" + String(repeating: "[", count: 5000) + "\"", "\"" + String(repeating: "x", count: 100_000) + "\"",
    ]

    /// One edit of a JSON file: a known key's value replaced, the key removed or given twice, a list emptied or
    /// repeated, a key added; or byte damage.
    mutating func json(_ data: Data, keys: Set<String>, values extra: [String] = [], additions: [String] = []) -> (Data, String) {
        var b = [UInt8](data)
        let fields = JSONText.fields(named: keys, in: b)
        guard !fields.isEmpty, !chance(0.2) else { return bytes(data) }
        let f = pick(fields)
        switch int(0..<10) {
        case 0..<5:
            let v = pick(FuzzMutator.values + extra + extra)
            b.replaceSubrange(f.value, with: Array(v.utf8))
            return (Data(b), "\(f.name) = \(v.prefix(40))")
        case 5:
            b.removeSubrange(JSONText.memberRange(f, in: b))
            return (Data(b), "\(f.name) removed")
        case 6 where b.first == UInt8(ascii: "{"):
            b.insert(contentsOf: Array(b[f.key..<f.value.upperBound]) + Array(", ".utf8), at: 1)
            return (Data(b), "\(f.name) given twice")
        case 7 where f.value.count > 2 && b[f.value.lowerBound] == UInt8(ascii: "["):
            let inner = Array(b[(f.value.lowerBound + 1)..<(f.value.upperBound - 1)])
            let repeated = Array(repeating: inner, count: 1000).joined(separator: Array(",".utf8))
            b.replaceSubrange(f.value, with: [UInt8(ascii: "[")] + repeated + [UInt8(ascii: "]")])
            return (Data(b), "\(f.name) repeated x1000")
        case 8 where !additions.isEmpty && b.first == UInt8(ascii: "{"):
            let add = pick(additions)
            b.insert(contentsOf: Array((add + ", ").utf8), at: 1)
            return (Data(b), "added \(add.prefix(60))")
        default:
            b.replaceSubrange(f.value, with: Array("[]".utf8))
            return (Data(b), "\(f.name) = []")
        }
    }

    // MARK: Safetensors

    static let headerValues = [
        "\"F8_E4M3\"", "\"I64\"", "\"F64\"", "\"BOOL\"", "[2147483648, 2147483648]", "[4611686018427387904, 4]", "[-1, 4]",
        "[1000000, 1000000]", "[1e400]", "[1.5]", "[0, 18446744073709551615]", "[0, 9223372036854775807]", "[5, 4]", "[0]",
    ]

    /// A well-formed file with changed tensors, an inconsistent header, a wrong length field, or byte damage.
    mutating func safetensors(_ data: Data) throws -> (Data, String) {
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        switch int(0..<10) {
        case 0..<5:
            return try tensors(data)
        case 5..<8:
            let (header, what) = json(data.subdata(in: 8..<(8 + n)), keys: ["dtype", "shape", "data_offsets", "format"],
                                      values: FuzzMutator.headerValues)
            var padded = [UInt8](header)
            padded += Array(repeating: 0x20, count: (8 - padded.count % 8) % 8)
            return (FuzzMutator.lengthField(UInt64(padded.count)) + Data(padded) + data.subdata(in: (8 + n)..<data.count), "header: \(what)")
        case 8:
            let length = pick([0, 7, UInt64(n - 1), UInt64(n + 1), 100_000_001, 1 << 63, UInt64.max, UInt64(data.count)])
            return (FuzzMutator.lengthField(length) + data.dropFirst(8), "header length field = \(length)")
        default:
            return bytes(data)
        }
    }

    static func lengthField(_ n: UInt64) -> Data { withUnsafeBytes(of: n.littleEndian) { Data($0) } }

    static let specials: [Float] = [.nan, .infinity, -.infinity, .greatestFiniteMagnitude, -0.0, .leastNonzeroMagnitude]

    /// A well-formed file whose tensors changed: reshaped, reinterpreted as another dtype, holding NaN / infinities /
    /// F64 values beyond Float's range, emptied, removed, or joined by a renamed copy.
    mutating func tensors(_ data: Data) throws -> (Data, String) {
        let file = try SafetensorsFile(data: data)
        var entries = try Dictionary(uniqueKeysWithValues: file.keys.map { ($0, try file.entry($0)) })
        let key = pick(file.keys), e = entries[key]!
        let count = e.shape.reduce(1, *), last = e.shape.last ?? 1
        let head = Array(e.shape.dropLast())
        let what: String
        switch int(0..<7) {
        case 0:
            let shape = pick([[count], [1, count], Array(e.shape.reversed())].filter { $0 != e.shape })
            entries[key] = try SafetensorsEntry(dtype: e.dtype, shape: shape, bytes: e.bytes)
            what = "reshaped to \(shape)"
        case 1:
            let (dtype, factor) = pick([(SafetensorsDType.I32, 1), (.F16, 2), (.BF16, 2), (.U8, 4)])
            entries[key] = try SafetensorsEntry(dtype: dtype, shape: head + [last * factor], bytes: e.bytes)
            what = "read as \(dtype.rawValue)"
        case 2 where count > 0:
            var v = try file.tensor(key).scalars
            let special = pick(FuzzMutator.specials)
            if chance(0.3) { v = v.map { _ in special } } else { v[int(0..<count)] = special }
            entries[key] = try SafetensorsEntry.float(Tensor(v, shape: e.shape))
            what = "holds \(special)"
        case 3 where count > 0:
            var v = try file.tensor(key).scalars.map(Double.init)
            v[int(0..<count)] = pick([1e39, -1e300, 1e300])
            entries[key] = try SafetensorsEntry(dtype: .F64, shape: e.shape, bytes: v.withUnsafeBytes { Data($0) })
            what = "F64 beyond Float's range"
        case 4:
            entries[key] = try SafetensorsEntry(dtype: e.dtype, shape: [0] + e.shape.dropFirst(), bytes: Data())
            what = "emptied"
        case 5:
            entries[key] = nil
            what = "removed"
        default:
            let name = key.contains("fc1") ? key.replacingOccurrences(of: "fc1", with: "fc3") : key + "x"
            entries[name] = e
            what = "copied as \(name)"
        }
        return (try Safetensors.encode(entries: entries, metadata: file.metadata.isEmpty ? nil : file.metadata), "tensor \(key) \(what)")
    }

    // MARK: Data files

    static let garbageLines = ["{", "[]", "null", "{}", "not json", "{\"input\": [1,], \"target\": [1], \"task\": \"t\"}"]
    static let dataValues = ["[1e39]", "[NaN]", "[0.5]", "[\"1\"]", "[null]", "[[1]]", "7", "\"t9\"",
                             "[0, 0, 0, 0, 0, 0, 0]", "[" + Array(repeating: "0.5", count: 100_000).joined(separator: ",") + "]"]

    /// One edit of a JSONL file: a line's key changed (widths, values beyond Float, NaN, kinds), a line removed,
    /// repeated or garbage inserted, every sample its own task; or byte damage.
    mutating func jsonl(_ data: Data, keys: Set<String>) -> (Data, String) {
        guard !chance(0.2) else { return bytes(data) }
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let i = int(0..<Swift.max(1, lines.count - 1))
        let what: String
        switch int(0..<8) {
        case 0:
            lines.remove(at: i)
            what = "line \(i + 1) removed"
        case 1:
            lines.insert(contentsOf: repeatElement(lines[i], count: 1000), at: i)
            what = "line \(i + 1) repeated x1000"
        case 2:
            lines.insert(pick(FuzzMutator.garbageLines), at: i)
            what = "garbage line \(i + 1)"
        case 3 where keys.contains("task"):
            lines = lines.enumerated().map { k, line in line.replacingOccurrences(of: "\"task\": \"", with: "\"task\": \"t\(k)") }
            what = "every sample its own task"
        default:
            let (edited, change) = json(Data(lines[i].utf8), keys: keys, values: FuzzMutator.dataValues)
            lines[i] = String(decoding: edited, as: UTF8.self)
            what = "line \(i + 1): \(change)"
        }
        return (Data(lines.joined(separator: "\n").utf8), what)
    }

    static let csvValues = ["", "nan", "inf", "-inf", "1e39", "1e400", "0x1p3", " 1 ", "\"", "a\"b", "\"unterminated", "\"a\nb\"", "x01"]

    /// One edit of a CSV file: a field (the header's too) replaced, removed or added, a record removed, every
    /// record its own task; or byte damage.
    mutating func csv(_ data: Data) -> (Data, String) {
        guard !chance(0.2) else { return bytes(data) }
        var rows = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let r = int(0..<(rows.count - 1)), c = int(0..<rows[r].count)
        let what: String
        switch int(0..<6) {
        case 0, 1:
            rows[r][c] = pick(FuzzMutator.csvValues + ["task", "x0", "y0", "x6"])
            what = "record \(r + 1) field \(c) = \(rows[r][c].debugDescription)"
        case 2:
            rows[r].remove(at: c)
            what = "record \(r + 1) field \(c) removed"
        case 3:
            rows[r].insert(pick(FuzzMutator.csvValues), at: c)
            what = "record \(r + 1) field inserted at \(c)"
        case 4:
            for k in 1..<(rows.count - 1) { rows[k][0] = "t\(k)" }
            what = "every record its own task"
        default:
            rows.remove(at: r)
            what = "record \(r + 1) removed"
        }
        return (Data(rows.map { $0.joined(separator: ",") }.joined(separator: "\n").utf8), what)
    }
}

/// Edits of JSON text that keep the rest byte for byte (the checkpoint's 64-bit generator words, key order).
enum JSONText {
    /// A `"name": value` member: where its key starts and where its value lies.
    struct Field {
        let name: String
        let key: Int
        let value: Range<Int>
    }

    static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), colon = UInt8(ascii: ":"), comma = UInt8(ascii: ",")

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }

    /// Every member (nested ones too) whose key is in `names`.
    static func fields(named names: Set<String>, in b: [UInt8]) -> [Field] {
        var out: [Field] = []
        var i = 0
        while i < b.count {
            guard b[i] == quote else { i += 1; continue }
            let start = i
            i = stringEnd(b, from: i)
            var j = skipSpaces(b, from: i)
            guard j < b.count, b[j] == colon else { continue }
            j = skipSpaces(b, from: j + 1)
            let name = String(decoding: b[(start + 1)..<Swift.max(start + 1, i - 1)], as: UTF8.self)
            if names.contains(name) { out.append(Field(name: name, key: start, value: j..<valueEnd(b, from: j))) }
        }
        return out
    }

    static func skipSpaces(_ b: [UInt8], from start: Int) -> Int {
        var i = start
        while i < b.count, isSpace(b[i]) { i += 1 }
        return i
    }

    /// The index after the string that opens at `start`.
    static func stringEnd(_ b: [UInt8], from start: Int) -> Int {
        var i = start + 1
        while i < b.count {
            if b[i] == backslash { i += 2; continue }
            if b[i] == quote { return i + 1 }
            i += 1
        }
        return b.count
    }

    /// The index after the value that starts at `start` (a string, a bracketed value, or a bare token).
    static func valueEnd(_ b: [UInt8], from start: Int) -> Int {
        guard start < b.count else { return start }
        if b[start] == quote { return stringEnd(b, from: start) }
        var depth = 0, i = start
        while i < b.count {
            let c = b[i]
            if c == quote { i = stringEnd(b, from: i); continue }
            if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
            if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                if depth == 0 { return i }
                depth -= 1
                if depth == 0 { return i + 1 }
            }
            if depth == 0 && (c == comma || isSpace(c)) { return i }
            i += 1
        }
        return b.count
    }

    /// The bytes to remove to drop member `f` with one adjacent comma.
    static func memberRange(_ f: Field, in b: [UInt8]) -> Range<Int> {
        let after = skipSpaces(b, from: f.value.upperBound)
        if after < b.count, b[after] == comma { return f.key..<(after + 1) }
        var before = f.key - 1
        while before >= 0, isSpace(b[before]) { before -= 1 }
        return before >= 0 && b[before] == comma ? before..<f.value.upperBound : f.key..<f.value.upperBound
    }
}
