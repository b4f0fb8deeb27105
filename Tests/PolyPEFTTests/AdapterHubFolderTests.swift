import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// The adapters library's folder format, on the folders the library itself wrote (`golden_bottleneck/<case>/adapter/`,
/// from `save_adapter(..., use_safetensors=True)`): each loads here and reproduces the library's output; what we write
/// has the library's `adapter_config.json` byte for byte and its tensors under its keys (plus the shared Compacter
/// parameters its `save_adapter` leaves out); and bad folders fail with errors naming the file and key.
final class AdapterHubFolderTests: XCTestCase {
    static var golden: URL { BottleneckGoldenTests.directory }

    static func cases() throws -> [(name: String, json: JSONValue, dir: URL)] {
        let index = try JSONValue(parsing: try Data(contentsOf: golden.appendingPathComponent("cases.json")))
        return (index["cases"]?.arrayValue ?? []).map { c in
            let name = c["name"]?.stringValue ?? "?"
            return (name, c, golden.appendingPathComponent(name))
        }
    }

    /// The shared parameters the library's folder lacks, from the case's full parameter file, under the library's keys.
    static func sharedParameters(_ dir: URL) throws -> [String: Tensor] {
        try Safetensors.read(dir.appendingPathComponent("adapter_parameters.safetensors")).filter { $0.key.hasPrefix("shared_parameters.") }
    }

    func testLibraryFoldersLoadAndReproduceItsOutput() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 18)
        var withShared = 0
        for (name, c, dir) in cases {
            let folder = dir.appendingPathComponent("adapter")
            let shared = try Self.sharedParameters(dir)
            let library = try AdapterHubFolder.read(from: folder)
            let missingShared = shared.keys.filter { library.tensors[$0] == nil }
            if !missingShared.isEmpty {
                // The library's save_adapter leaves the shared rule out: loading says so and names the key.
                withShared += 1
                let subject = try GoldenConformanceTests.makeSubject(c, dir)
                XCTAssertThrowsError(try PeftModel.loadAdapterHub(from: folder, into: subject.model), name) { e in
                    let text = "\(e)"
                    XCTAssertTrue(text.contains("missing tensor 'shared_parameters.golden.") && text.contains("supplementing"), text)
                    XCTAssertTrue(text.contains(folder.appendingPathComponent("adapter.safetensors").path), text)
                }
            }
            let subject = try GoldenConformanceTests.makeSubject(c, dir)
            let peft = try PeftModel.loadAdapterHub(from: folder, into: subject.model, supplementing: shared)
            XCTAssertTrue(peft.config is BnConfig || name.hasPrefix("union"), name)
            XCTAssertEqual(peft.config is ConfigUnion, name.hasPrefix("union"), name)
            let outputs = try Safetensors.read(dir.appendingPathComponent("outputs.safetensors"))
            let y = try subject.forward(Context.inference(), false).output.value
            let expected = outputs["output"]!
            let scale = expected.scalars.map { Swift.abs($0) }.max() ?? 1
            assertClose(y, expected, rtol: 1e-5, atol: 1e-5 * scale, "\(name): output of the library's folder")
        }
        XCTAssertGreaterThanOrEqual(withShared, 5, "cases whose library folder lacks the shared Compacter rule")
    }

    func testWrittenFolderIsTheLibrarysAndRoundTrips() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("adapterhub-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var identical = 0
        for (name, c, dir) in try Self.cases() {
            let libraryDir = dir.appendingPathComponent("adapter")
            let library = try AdapterHubFolder.read(from: libraryDir)
            let shared = try Self.sharedParameters(dir)
            let subject = try GoldenConformanceTests.makeSubject(c, dir)
            let peft = try PeftModel.loadAdapterHub(from: libraryDir, into: subject.model, supplementing: shared)
            let out = tmp.appendingPathComponent(name)
            try peft.saveAdapterHub(to: out, name: library.name)
            // adapter_config.json: byte for byte the library's (config, model class and type, hidden size, version).
            XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("adapter_config.json"), encoding: .utf8),
                           try String(contentsOf: libraryDir.appendingPathComponent("adapter_config.json"), encoding: .utf8), name)
            // Tensors: the library's keys and values, plus the shared parameters it does not save.
            let written = try Safetensors.read(out.appendingPathComponent("adapter.safetensors"))
            XCTAssertEqual(Set(written.keys), Set(library.tensors.keys).union(shared.keys), name)
            for (k, t) in written { XCTAssertEqual(t, library.tensors[k] ?? shared[k], "\(name) \(k)") }
            if written.count == library.tensors.count && !(library.config["ln_before"]?.boolValue ?? false) {
                // Where the library wrote safetensors itself, our file is its file byte for byte.
                XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("adapter.safetensors")),
                               try Data(contentsOf: libraryDir.appendingPathComponent("adapter.safetensors")), "\(name) adapter.safetensors bytes")
                identical += 1
            }
            // Written and read back here: the same output, bit for bit.
            let before = try subject.forward(Context.inference(), false).output.value
            let again = try GoldenConformanceTests.makeSubject(c, dir)
            _ = try PeftModel.loadAdapterHub(from: out, into: again.model)
            XCTAssertEqual(try again.forward(Context.inference(), false).output.value, before, name)
        }
        XCTAssertGreaterThanOrEqual(identical, 8, "cases compared byte for byte")
    }

    /// A folder saved from a model with a head has keys under the base-model prefix (`bert.`); a bare model's folder
    /// loads into a classifier, whose keys have it.
    func testBaseModelPrefixEitherWay() throws {
        let (_, c, dir) = try XCTUnwrap(try Self.cases().first { $0.name == "seqbn_bert" })
        let folder = try AdapterHubFolder.read(from: dir.appendingPathComponent("adapter"))
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("adapterhub-prefix-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var prefixed = folder
        prefixed.tensors = Dictionary(uniqueKeysWithValues: folder.tensors.map { ("bert." + $0.key, $0.value) })
        prefixed.modelClass = "BertAdapterModel"
        try prefixed.write(to: tmp)
        let subject = try GoldenConformanceTests.makeSubject(c, dir)
        let peft = try PeftModel.loadAdapterHub(from: tmp, into: subject.model)
        XCTAssertEqual(try peft.adapterHubTensors(name: folder.name), folder.tensors)

        let config = try BertConfig(json: try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("base_config.json"))))
        let classifier = try BertForSequenceClassification(config: config)
        let onClassifier = try PeftModel.loadAdapterHub(from: dir.appendingPathComponent("adapter"), into: classifier)
        XCTAssertEqual(try onClassifier.adapterHubTensors(name: folder.name), prefixed.tensors)
        let written = try onClassifier.adapterHubFolder(name: folder.name)
        XCTAssertEqual(written.modelClass, "BertForSequenceClassification")
        XCTAssertEqual(written.configFile["model_type"], .string("bert"))
    }

    func testBadFoldersFailNamingFileAndKey() throws {
        let (_, c, dir) = try XCTUnwrap(try Self.cases().first { $0.name == "bn_options_bert" })
        let good = try AdapterHubFolder.read(from: dir.appendingPathComponent("adapter"))
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("adapterhub-bad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        var n = 0
        func expectFailure(_ what: String, _ edit: (inout AdapterHubFolder) -> Void, _ fragments: [String],
                           file: StaticString = #filePath, line: UInt = #line) throws {
            n += 1
            var f = good
            edit(&f)
            let d = root.appendingPathComponent("case\(n)")
            try f.write(to: d)
            let subject = try GoldenConformanceTests.makeSubject(c, dir)
            XCTAssertThrowsError(try PeftModel.loadAdapterHub(from: d, into: subject.model), what, file: file, line: line) { e in
                for s in fragments { XCTAssertTrue("\(e)".contains(s), "\(what): '\(s)' not in: \(e)", file: file, line: line) }
            }
        }
        let key = "encoder.layer.0.output.adapters.golden.adapter_up.weight"
        let alias = "encoder.layer.0.output.adapters.golden.adapter_down.0.weight"
        XCTAssertNotNil(good.tensors[key])
        XCTAssertNotNil(good.tensors[alias], "ln_before: the library lists the first LayerNorm twice")
        try expectFailure("missing", { $0.tensors[key] = nil }, ["adapter.safetensors", "missing tensor '\(key)'"])
        try expectFailure("extra", { $0.tensors["encoder.layer.0.output.adapters.golden.extra"] = Tensor.zeros([2]) },
                          ["unexpected tensor 'encoder.layer.0.output.adapters.golden.extra'"])
        try expectFailure("other name", { $0.name = "other" }, ["unexpected tensor '", "adapter 'other'"])
        try expectFailure("shape", { $0.tensors[key] = Tensor.zeros([3, 3]) }, ["'\(key)' has shape [3, 3]"])
        try expectFailure("alias", { $0.tensors[alias] = $0.tensors[alias]!.map { $0 + 1 } },
                          ["'\(alias)'", "different values"])
        try expectFailure("nan", { $0.tensors[key] = $0.tensors[key]!.map { _ in .nan } }, [key, "holds nan"])
        try expectFailure("model type", { $0.modelType = "t5" }, ["adapter_config.json", "model_type is \"t5\""])
        try expectFailure("hidden", { $0.hiddenSize = 32 }, ["adapter_config.json", "hidden_size is 32, the model's is 16"])
        try expectFailure("prompt", { $0.config = ["architecture": "prompt_tuning", "prompt_length": 8] },
                          ["architecture \"prompt_tuning\" is not read"])
        try expectFailure("bad value", { $0.config = .object(($0.config.objectValue ?? [:]).merging(["reduction_factor": -1]) { $1 }) },
                          ["adapter_config.json config", "reduction_factor"])
        try expectFailure("peft key", { $0.config = .object(($0.config.objectValue ?? [:]).merging(["peft_type": "LORA"]) { $1 }) },
                          ["'peft_type' is a PEFT key"])
        try expectFailure("unsupported", { $0.config = .object(($0.config.objectValue ?? [:]).merging(["stochastic_depth": 0.5]) { $1 }) },
                          ["stochastic_depth"])

        // Files: the pickle format, a PEFT folder, a config that is not the library's.
        let pickle = root.appendingPathComponent("pickle")
        try good.write(to: pickle)
        try FileManager.default.moveItem(at: pickle.appendingPathComponent("adapter.safetensors"),
                                         to: pickle.appendingPathComponent("pytorch_adapter.bin"))
        XCTAssertThrowsError(try AdapterHubFolder.read(from: pickle)) { e in
            XCTAssertTrue("\(e)".contains("pytorch_adapter.bin is a PyTorch pickle") && "\(e)".contains("use_safetensors=True"), "\(e)")
        }
        let peftDir = root.appendingPathComponent("peft")
        try PeftAdapterFolder.write(config: ["peft_type": "LORA"], tensors: [:], to: peftDir)
        XCTAssertThrowsError(try AdapterHubFolder.read(from: peftDir)) { e in XCTAssertTrue("\(e)".contains("this is a PEFT adapter folder"), "\(e)") }
        let noConfig = root.appendingPathComponent("noconfig")
        try good.write(to: noConfig)
        try AtomicFile.write("{\"name\": \"x\", \"config\": 3}", to: noConfig.appendingPathComponent("adapter_config.json"))
        XCTAssertThrowsError(try AdapterHubFolder.read(from: noConfig)) { e in
            XCTAssertTrue("\(e)".contains("adapter_config.json: \"config\" must be an object"), "\(e)")
        }
        try AtomicFile.write("{\"config\": {}, \"hidden_size\": -4, \"name\": \"x\"}", to: noConfig.appendingPathComponent("adapter_config.json"))
        XCTAssertThrowsError(try AdapterHubFolder.read(from: noConfig)) { e in XCTAssertTrue("\(e)".contains("\"hidden_size\" must be a positive integer"), "\(e)") }

        // Saving what the format cannot hold.
        var rng = Xoshiro256(seed: 1)
        let lora = try PeftModel(wrapping: try GoldenConformanceTests.makeSubject(c, dir).model,
                                 config: try LoraConfig(json: ["peft_type": "LORA", "target_modules": ["query"]]), using: &rng)
        XCTAssertThrowsError(try lora.saveAdapterHub(to: root.appendingPathComponent("lora"), name: "x")) { e in
            XCTAssertTrue("\(e)".contains("LORA has no adapters-library format"), "\(e)")
        }
        let bn = try PeftModel.loadAdapterHub(from: dir.appendingPathComponent("adapter"), into: try GoldenConformanceTests.makeSubject(c, dir).model)
        XCTAssertThrowsError(try bn.saveAdapterHub(to: root.appendingPathComponent("dotted"), name: "a.b")) { e in
            XCTAssertTrue("\(e)".contains("adapter name \"a.b\""), "\(e)")
        }
    }
}
