import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The golden conformance suite: for every case in `cases.json` of a golden directory (the copies bundled in the test
/// resources: `golden/` for Poly/MHR, `golden_methods/` for the other methods; or `POLYPEFT_GOLDEN_DIR` alone),
/// rebuild the base model, load the PEFT-saved adapter by its `peft_type`, and compare against the real PEFT
/// tuner: eval outputs, the base alone, per-layer intermediates, gradients of sum(output^2) for every adapter tensor
/// and the input, and the train-mode record with its recorded noise injected. A case that cannot run fails.
final class GoldenConformanceTests: XCTestCase {
    /// The Poly/MHR golden set (the shared one, plus our BERT case).
    static var goldenDirectory: URL { goldenDirectories[0] }

    static var goldenDirectories: [URL] {
        if let env = ProcessInfo.processInfo.environment["POLYPEFT_GOLDEN_DIR"], !env.isEmpty {
            return [URL(fileURLWithPath: env)]
        }
        return ["golden", "golden_methods"].map { Bundle.module.url(forResource: $0, withExtension: nil)! }
    }

    /// Relative tolerance against PEFT's float32 results, scaled by the largest magnitude of each compared tensor.
    let rtol: Float = 1e-5

    func assertGolden(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let scale = expected.scalars.map { Swift.abs($0) }.max() ?? 0
        assertClose(actual, expected, rtol: rtol, atol: rtol * Swift.max(scale, 1e-6), what, file: file, line: line)
    }

    func testGoldenCases() throws {
        var checked = 0
        for dir in GoldenConformanceTests.goldenDirectories {
            let index = try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("cases.json")))
            guard let cases = index["cases"]?.arrayValue, !cases.isEmpty else {
                XCTFail("\(dir.path)/cases.json lists no cases")
                continue
            }
            for c in cases {
                let name = c["name"]?.stringValue ?? "?"
                do {
                    try runCase(c, in: dir.appendingPathComponent(name))
                    checked += 1
                } catch {
                    XCTFail("golden case \(name) could not run: \(error)")
                }
            }
        }
        print("golden: \(checked) cases checked")
    }

    /// A model under test: its tree and how to run it on the case's inputs.
    struct Subject {
        let model: Module
        let forward: (Context, _ inputGrad: Bool) throws -> (output: Variable, input: Variable?)
    }

    static func makeSubject(_ c: JSONValue, _ dir: URL) throws -> Subject {
        let kind = c["model_kind"]?.stringValue ?? "mlp"
        let inputs = try SafetensorsFile(contentsOf: dir.appendingPathComponent("inputs.safetensors"))
        let baseWeights = try Safetensors.read(dir.appendingPathComponent("base_model.safetensors"))
        switch kind {
        case "mlp":
            var rng = Xoshiro256(seed: 0)
            let mlp = try MLP(try MLP.ops(from: c["architecture"] ?? .null), using: &rng)
            try mlp.loadStateDict(baseWeights, source: "base_model.safetensors")
            let x = try inputs.tensor("x")
            return Subject(model: mlp) { ctx, grad in
                let xv = Variable(x, requiresGrad: grad)
                return (try mlp(xv, ctx), xv)
            }
        case "t5", "bert":
            let config = try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("base_config.json")))
            let type = config["model_type"]?.stringValue ?? kind
            let ids = try inputs.intRows("input_ids")
            let mask = inputs.contains("attention_mask") ? try inputs.intRows("attention_mask") : nil
            if type == "t5" || type == "mt5" {
                let t5 = try T5ForConditionalGeneration(config: try T5Config(json: config))
                try t5.loadStateDict(baseWeights, source: "base_model.safetensors")
                let dec = try inputs.intRows("decoder_input_ids")
                return Subject(model: t5) { ctx, _ in
                    (try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, ctx), nil)
                }
            }
            guard type == "bert" else { throw ModuleError("base_config.json: model_type '\(type)' is not supported") }
            let types = inputs.contains("token_type_ids") ? try inputs.intRows("token_type_ids") : nil
            let bertConfig = try BertConfig(json: config)
            if baseWeights.keys.contains(where: { $0.hasPrefix("classifier.") }) {
                let classifier = try BertForSequenceClassification(config: bertConfig)
                try classifier.loadStateDict(baseWeights, source: "base_model.safetensors")
                return Subject(model: classifier) { ctx, _ in
                    (try classifier.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx), nil)
                }
            }
            let bert = try BertModel(config: bertConfig, addPoolingLayer: baseWeights.keys.contains { $0.hasPrefix("pooler.") })
            try bert.loadStateDict(baseWeights, source: "base_model.safetensors")
            return Subject(model: bert) { ctx, _ in
                (try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, ctx).sequence, nil)
            }
        default:
            throw ModuleError("model kind '\(kind)' is not supported by this build")
        }
    }

    func runCase(_ c: JSONValue, in dir: URL) throws {
        let name = dir.lastPathComponent
        let subject = try Self.makeSubject(c, dir)
        let peftType = c["peft_type"]?.stringValue ?? "POLY"
        let peft = try PeftModel.load(from: dir.appendingPathComponent("adapter"), into: subject.model)
        XCTAssertEqual(peft.config.peftType, peftType, "\(name): peft_type")
        let inputs = try SafetensorsFile(contentsOf: dir.appendingPathComponent("inputs.safetensors"))
        let taskIDs = inputs.contains("task_ids") ? try inputs.intTensor("task_ids").values : nil
        let outputs = try Safetensors.read(dir.appendingPathComponent("outputs.safetensors"))

        // Eval mode: outputs, the base alone, and every recorded intermediate.
        let recorder = Recorder()
        let ctx = Context(mode: .eval, taskIDs: taskIDs, recordsGradients: false, recorder: recorder)
        let y = try subject.forward(ctx, false).output
        assertGolden(y.value, outputs["peft_output"]!, "\(name) peft_output")
        let off = Context.inference(taskIDs: taskIDs)
        off.adaptersEnabled = false
        // A method that trains base parameters (LoRA's bias) changes the base too: PEFT's disabled-adapter output.
        let disabledKey = c["has_disabled_output"]?.boolValue == true ? "disabled_output" : "base_output"
        assertGolden(try subject.forward(off, false).output.value, outputs[disabledKey]!, "\(name) \(disabledKey)")
        var layerKeys = 0
        for (key, expected) in outputs where key.hasPrefix("layer.") || key.hasPrefix("prefix.") {
            guard let actual = recorder[key] else { XCTFail("\(name): nothing recorded for \(key)"); continue }
            assertGolden(actual, expected, "\(name) \(key)")
            layerKeys += 1
        }
        if ["POLY", "PREFIX_TUNING"].contains(peftType) { XCTAssertGreaterThan(layerKeys, 0, "\(name): no intermediates compared") }
        for (path, layer) in peft.polyLayers {
            assertGolden(try layer.routingWeights().indexSelect(axis: 0, taskIDs ?? []), outputs["layer.\(path).mixing_weights"]!, "\(name) routing readout \(path)")
        }

        // Gradients of sum(output^2) in eval mode.
        let grads = try Safetensors.read(dir.appendingPathComponent("grads.safetensors"))
        try checkGradients(peft, subject, Context(mode: .eval, taskIDs: taskIDs), expected: grads, loss: grads["loss"], name: "\(name) eval")

        // Train mode with PEFT's recorded uniform noise injected into each router.
        let trainURL = dir.appendingPathComponent("train_mode.safetensors")
        let hasRecord = c["has_train_mode_record"]?.boolValue ?? false
        XCTAssertEqual(hasRecord, FileManager.default.fileExists(atPath: trainURL.path), "\(name): train-mode record flag")
        if hasRecord {
            let train = try Safetensors.read(trainURL)
            let tctx = Context(mode: .train, taskIDs: taskIDs, recorder: Recorder())
            for (path, _) in peft.adapters { tctx.injectedUniformDraws[path] = train["layer.\(path).noise_uniform"] }
            XCTAssertFalse(tctx.injectedUniformDraws.isEmpty, "\(name): no noise in the train-mode record")
            try checkGradients(peft, subject, tctx, expected: train, loss: train["loss"], name: "\(name) train", output: train["peft_output"])
            for (path, _) in peft.adapters {
                assertGolden(tctx.recorder!["layer.\(path).mixing_weights"]!, train["layer.\(path).mixing_weights"]!, "\(name) train mixing \(path)")
            }
        }
    }

    func checkGradients(_ peft: PeftModel, _ subject: Subject, _ ctx: Context, expected: [String: Tensor], loss expectedLoss: Tensor?,
                        name: String, output: Tensor? = nil) throws {
        peft.zeroGrad()
        let (y, x) = try subject.forward(ctx, true)
        if let output { assertGolden(y.value, output, "\(name) output") }
        let loss = try y.squared().sum()
        if let expectedLoss { assertGolden(try loss.value.reshaped([1]), expectedLoss, "\(name) loss") }
        try loss.backward()
        var compared = 0
        let ours = Set(peft.adapterParameters().map { "grad." + $0.key })
        for key in expected.keys.sorted() where key.hasPrefix("grad.") && key != "grad.input.x" && !ours.contains(key) {
            XCTFail("\(name): golden gradient \(key) has no adapter parameter")
        }
        for (key, p) in peft.adapterParameters() {
            guard let g = expected["grad." + key] else { XCTFail("\(name): no golden gradient for \(key)"); continue }
            assertGolden(p.grad ?? Tensor.zeros(p.value.shape), g, "\(name) grad \(key)")
            compared += 1
        }
        if let x, let gx = expected["grad.input.x"] {
            assertGolden(x.grad ?? Tensor.zeros(x.shape), gx, "\(name) grad input")
        }
        XCTAssertGreaterThan(compared, 0, "\(name): no gradients compared")
    }
}
