import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class ConfigTests: XCTestCase {
    var golden: URL { GoldenConformanceTests.goldenDirectory }

    func testDecodesEveryGoldenAdapterConfigAndWritesItBackByteForByte() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: golden.path).filter {
            FileManager.default.fileExists(atPath: golden.appendingPathComponent("\($0)/adapter/adapter_config.json").path)
        }
        XCTAssertGreaterThanOrEqual(names.count, 5)
        for name in names {
            let url = golden.appendingPathComponent("\(name)/adapter/adapter_config.json")
            let data = try Data(contentsOf: url)
            let config = try PolyConfig(json: try JSONValue(parsing: data))
            XCTAssertEqual(config.r, 2)
            XCTAssertEqual(config.nTasks, 3)
            XCTAssertEqual(config.peftVersion, "0.21.2")
            XCTAssertTrue(config.warnings.isEmpty, "\(name): \(config.warnings)")
            XCTAssertEqual(config.json.pythonStyleString(indent: 2, sortKeys: true), String(decoding: data, as: UTF8.self), name)
            // The same through Codable and JSONDecoder.
            XCTAssertEqual(try JSONDecoder().decode(PolyConfig.self, from: data), config)
        }
    }

    func testDecodesEveryMethodGoldenConfigAndWritesItBackByteForByte() throws {
        let dir = GoldenConformanceTests.goldenDirectories.last!
        let index = try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("cases.json")))
        var seen = Set<String>()
        for c in index["cases"]?.arrayValue ?? [] {
            let name = c["name"]!.stringValue!
            guard let type = c["peft_type"]?.stringValue, PeftMethods.configType(for: type) != nil else { continue }
            let data = try Data(contentsOf: dir.appendingPathComponent("\(name)/adapter/adapter_config.json"))
            let config = try PeftMethods.config(json: try JSONValue(parsing: data))
            XCTAssertEqual(config.peftType, type, name)
            XCTAssertTrue(config.warnings.isEmpty, "\(name): \(config.warnings)")
            XCTAssertEqual(config.json.pythonStyleString(indent: 2, sortKeys: true), String(decoding: data, as: UTF8.self), name)
            seen.insert(type)
        }
        XCTAssertEqual(seen, ["IA3", "LORA", "PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING", "BEFT", "LN_TUNING"])
    }

    func testDefaultConfigsWriteTheBytesPEFTWrites() throws {
        let dir = Bundle.module.url(forResource: "peft_default_configs", withExtension: nil)!
        var prefix = PrefixTuningConfig()
        prefix.numVirtualTokens = 3
        let configs: [any PeftConfig] = [LoraConfig(targetModules: .names(["fc1"])), IA3Config(targetModules: .names(["fc1"])),
                                         PolyConfig(targetModules: .names(["fc1"])), prefix,
                                         PromptTuningConfig(numVirtualTokens: 3), PromptEncoderConfig(numVirtualTokens: 3),
                                         BeftConfig(targetModules: .names(["fc1"])), LNTuningConfig(targetModules: .names(["fc1"]))]
        for config in configs {
            let expected = try String(contentsOf: dir.appendingPathComponent("\(config.peftType).json"), encoding: .utf8)
            XCTAssertEqual(config.json.pythonStyleString(indent: 2, sortKeys: true), expected, config.peftType)
        }
    }

    func testSizesThatCouldOnlyBeAnAccidentAreRefusedBeforeAllocation() {
        let cases: [(JSONValue, String)] = [
            (["peft_type": "POLY", "r": .int(1 << 20)], "adapter_config.json: r = 1048576 exceeds 65536"),
            (["peft_type": "POLY", "n_tasks": .int(1 << 31)], "adapter_config.json: n_tasks = 2147483648 exceeds 16777216"),
            (["peft_type": "POLY", "n_skills": .int(1 << 62), "n_splits": 4], "adapter_config.json: n_skills = 4611686018427387904 exceeds 65536"),
            (["peft_type": "POLY", "n_tasks": .int(1 << 20), "n_skills": 1024, "n_splits": 1],
             "adapter_config.json: n_tasks x n_splits x n_skills = 1048576 x 1 x 1024 exceeds 268435456 router logits"),
            (["peft_type": "LORA", "r": .int(1_000_000)], "adapter_config.json: r = 1000000 exceeds 65536"),
            (["peft_type": "LORA", "rank_pattern": ["fc1": .int(1 << 20)]], "adapter_config.json: rank_pattern['fc1'] = 1048576 exceeds 65536"),
        ]
        for (json, message) in cases {
            XCTAssertThrowsError(try PeftMethods.config(json: json)) { XCTAssertEqual("\($0)", message) }
        }
    }

    func testDefaultsUnknownKeysAndValidation() throws {
        let c = try PolyConfig(json: ["peft_type": "POLY", "target_modules": ".*fc[12]$", "future_option": [1, 2]])
        XCTAssertEqual(c.r, 8)
        XCTAssertEqual(c.nSkills, 4)
        XCTAssertEqual(c.nSplits, 1)
        XCTAssertEqual(c.nTasks, 1)
        XCTAssertTrue(c.initWeights)
        XCTAssertEqual(c.targetModules, .regex(".*fc[12]$"))
        XCTAssertEqual(c.warnings, ["unknown key 'future_option' kept as is (PolyPEFT does not use it)"])
        XCTAssertEqual(c.json["future_option"], [1, 2])
        XCTAssertNil(c.json["polypeft_mixing"])
        let bad: [(JSONValue, String)] = [
            (["r": 0], "adapter_config.json: r must be a positive integer, got 0"),
            (["poly_type": "mhr"], "adapter_config.json: poly_type must be \"poly\" (the only type PEFT supports), got \"mhr\""),
            (["n_splits": 0], "adapter_config.json: n_splits must be at least 1, got 0"),
            (["r": "8"], "adapter_config.json: 'r' must be an integer, got \"8\""),
            (["peft_type": "LORA"], "adapter_config.json: peft_type must be \"POLY\", got \"LORA\""),
            (["target_modules": 3], "adapter_config.json: 'target_modules' must be a regex string or a list of module names, got 3"),
            (["polypeft_mixing": "both"], "adapter_config.json: 'polypeft_mixing' must be one of parameters, outputs, got \"both\""),
        ]
        for (json, message) in bad {
            XCTAssertThrowsError(try PolyConfig(json: json)) { XCTAssertEqual("\($0)", message) }
        }
        let m = try PolyConfig(json: ["polypeft_mixing": "outputs"])
        XCTAssertEqual(m.mixing, .outputs)
        XCTAssertEqual(m.json["polypeft_mixing"], "outputs")
    }

    func testLoraConfigAcceptsPEFTDefaultsAndRejectsUnsupportedMaths() throws {
        let c = try LoraConfig(json: ["peft_type": "LORA", "r": 4, "lora_alpha": 16, "target_modules": ["q", "v"],
                                      "use_dora": false, "rank_pattern": [:], "fan_in_fan_out": false, "megatron_core": "megatron.core", "future_key": 1])
        XCTAssertEqual(c.r, 4)
        XCTAssertEqual(c.loraAlpha, 16)
        XCTAssertEqual(c.warnings, ["unknown key 'future_key' kept as is (PolyPEFT does not use it)"])
        XCTAssertThrowsError(try LoraConfig(json: ["fan_in_fan_out": true])) {
            XCTAssertEqual("\($0)", "adapter_config.json: fan_in_fan_out = true is not supported by PolyPEFT")
        }
        XCTAssertThrowsError(try LoraConfig(json: ["bias": "some"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: bias \"some\" is not supported (use \"none\", \"all\" or \"lora_only\")")
        }
        XCTAssertThrowsError(try LoraConfig(json: ["rank_pattern": ["fc1": 0]])) {
            XCTAssertEqual("\($0)", "adapter_config.json: rank_pattern['fc1'] must be a positive integer, got 0")
        }
        let d = try LoraConfig(json: ["use_dora": true, "bias": "all", "rank_pattern": ["fc2": 4], "alpha_pattern": ["fc1": 16]])
        XCTAssertTrue(d.useDora)
        XCTAssertEqual(d.bias, "all")
        XCTAssertEqual(try d.rankAndAlpha(for: "block.fc2").r, 4)
        XCTAssertEqual(try d.rankAndAlpha(for: "xfc2").r, 8)
        XCTAssertEqual(try d.rankAndAlpha(for: "fc1").alpha, 16)
        XCTAssertTrue(d.warnings.isEmpty)
        XCTAssertThrowsError(try LoraConfig(json: ["init_lora_weights": "pissa"]))
        XCTAssertEqual(try LoraConfig(json: ["init_lora_weights": "gaussian"]).initLoraWeights, .gaussian)
        let supported = #"(supported: "BEFT", "IA3", "LN_TUNING", "LORA", "POLY", "POLYPEFT_ADAPTERS_LORA", "POLYPEFT_ADAPTERS_PREFIX", "POLYPEFT_BITFIT", "POLYPEFT_BOTTLENECK", "POLYPEFT_SPARSE", "POLYPEFT_SSF", "POLYPEFT_UNION", "PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING")"#
        XCTAssertThrowsError(try PeftMethods.config(json: ["peft_type": "LOHA"])) {
            XCTAssertEqual("\($0)", "adapter_config.json: peft_type \"LOHA\" is not supported \(supported)")
        }
        XCTAssertThrowsError(try PeftMethods.config(json: ["r": 8])) {
            XCTAssertEqual("\($0)", "adapter_config.json: missing 'peft_type' \(supported)")
        }
        XCTAssertTrue(try PeftMethods.config(json: ["peft_type": "IA3"]) is IA3Config)
    }

    func testTargetMatchingAsPEFT() throws {
        let names = TargetModules.names(["q", "fc1"])
        XCTAssertTrue(try names.matches("encoder.block.0.layer.0.SelfAttention.q"))
        XCTAssertTrue(try names.matches("fc1"))
        XCTAssertFalse(try names.matches("encoder.qq"))
        XCTAssertFalse(try names.matches("xfc1"))
        let re = TargetModules.regex(".*decoder.*(SelfAttention|EncDecAttention).*(q|v)$")
        XCTAssertTrue(try re.matches("decoder.block.0.layer.1.EncDecAttention.v"))
        XCTAssertFalse(try re.matches("encoder.block.0.layer.0.SelfAttention.q"))
        XCTAssertFalse(try TargetModules.regex("fc").matches("fc1"))        // full match, not search
        XCTAssertThrowsError(try TargetModules.regex("(").matches("x"))
    }
}

final class PeftModelTests: XCTestCase {
    func makeMLP(seed: UInt64 = 1) throws -> MLP {
        var g = Xoshiro256(seed: seed)
        return try MLP([.linear(name: "fc1", inFeatures: 6, outFeatures: 8, bias: true), .activation(.relu),
                        .linear(name: "fc2", inFeatures: 8, outFeatures: 4, bias: true),
                        .linear(name: "head", inFeatures: 4, outFeatures: 2, bias: true)], using: &g)
    }

    func testWrapFreezesBaseAndNamesLikePEFT() throws {
        var g = Xoshiro256(seed: 2)
        var config = PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: 3, nSkills: 2, nSplits: 2)
        config.modulesToSave = ["head"]
        let peft = try PeftModel(wrapping: try makeMLP(), config: config, using: &g)
        XCTAssertEqual(peft.adapters.map(\.path), ["fc1", "fc2"])
        XCTAssertEqual(peft.adapterParameters().map(\.key), [
            "base_model.model.fc1.poly_lora_A", "base_model.model.fc1.poly_lora_B", "base_model.model.fc1.poly_router.module_logits",
            "base_model.model.fc2.poly_lora_A", "base_model.model.fc2.poly_lora_B", "base_model.model.fc2.poly_router.module_logits",
            "base_model.model.head.weight", "base_model.model.head.bias"])
        let trainable = peft.model.trainableParameters().map(\.name)
        XCTAssertFalse(trainable.contains("fc1.base_layer.weight"))
        XCTAssertTrue(trainable.contains("head.weight"))
        // adapters: fc1 A 24 + B 32 + logits 12, fc2 A 32 + B 16 + logits 12; head 10; base fc1 56 + fc2 36
        XCTAssertEqual(peft.parameterSummary(), "trainable params: 138 || all params: 230 || trainable%: 60.0000")
        let routing = try peft.routing()
        XCTAssertEqual(routing.map(\.weights.shape), [[3, 2, 2], [3, 2, 2]])
    }

    func testTaskTypeHeadsAreSavedAsPEFTsTaskWrappersDo() throws {
        // LoRA with task_type SEQ_CLS: PEFT trains and saves the classifier (modules_to_save gets classifier and
        // score; score matches nothing in BERT and is no error), under base_model.model.classifier.*.
        var g = Xoshiro256(seed: 3)
        let bert = try BertForSequenceClassification(config: BertModelTests.tinyConfig(), seed: 4)
        var config = LoraConfig(r: 2, targetModules: .names(["query", "classifier"]))
        config.taskType = "SEQ_CLS"
        let peft = try PeftModel(wrapping: bert, config: config, using: &g)
        XCTAssertEqual(peft.adapters.map(\.path), ["bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.1.attention.self.query"],
                       "a saved module is not also a target")
        XCTAssertEqual(peft.savedModules, ["classifier"])
        XCTAssertEqual(Array(peft.adapterParameters().map(\.key).suffix(2)), ["base_model.model.classifier.weight", "base_model.model.classifier.bias"])
        XCTAssertEqual(peft.config.modulesToSave, ["classifier", "score"])
        config.taskType = "QUESTION_ANS"
        config.modulesToSave = ["classifier"]
        XCTAssertEqual(try PeftModel(wrapping: try BertForSequenceClassification(config: BertModelTests.tinyConfig()), config: config, using: &g).config.modulesToSave,
                       ["classifier", "qa_outputs"])
        config.modulesToSave = ["head"]
        XCTAssertThrowsError(try PeftModel(wrapping: try BertForSequenceClassification(config: BertModelTests.tinyConfig()), config: config, using: &g)) {
            XCTAssertEqual("\($0)", "modules_to_save entry 'head' matched no module of the model")
        }
    }

    func testWrapErrors() throws {
        var g = Xoshiro256(seed: 2)
        XCTAssertThrowsError(try PeftModel(wrapping: try makeMLP(), config: PolyConfig(targetModules: .names(["attn"])), using: &g)) {
            XCTAssertEqual("\($0)", "target modules [\"attn\"] matched no module of the model")
        }
        XCTAssertThrowsError(try PeftModel(wrapping: try makeMLP(), config: PolyConfig(targetModules: .regex("act.*")), using: &g)) {
            XCTAssertEqual("\($0)", "target module 'act1' is a Activation; Poly adapts only Linear layers")
        }
        XCTAssertThrowsError(try PeftModel(wrapping: try makeMLP(), config: PolyConfig(targetModules: .names(["fc1"]), nSplits: 4), using: &g)) {
            XCTAssertEqual("\($0)", "fc1: in_features 6 and out_features 8 must both be divisible by n_splits 4")
        }
        XCTAssertThrowsError(try PeftModel(wrapping: try makeMLP(), config: PolyConfig(), using: &g)) {
            XCTAssertEqual("\($0)", "target_modules is not set and this model has no default targets")
        }
    }

    func testSaveLoadRoundTripAndLoadErrors() throws {
        var g = Xoshiro256(seed: 3)
        let config = PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: 3, nSkills: 2, initWeights: false, mixing: .outputs)
        let peft = try PeftModel(wrapping: try makeMLP(), config: config, using: &g)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("polypeft-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let reloaded = try PeftModel.load(from: dir, into: try makeMLP())
        var written = config
        written.inferenceMode = true                                   // as PEFT's save_pretrained writes it
        XCTAssertEqual(reloaded.config as? PolyConfig, written)
        let x = Variable(randomTensor([3, 6], seed: 4))
        let ctx = Context.inference(taskIDs: [2, 0, 1])
        XCTAssertEqual(try (reloaded.model as! MLP)(x, ctx).value, try (peft.model as! MLP)(x, ctx).value)
        var tensors = try peft.adapterTensors()
        tensors["base_model.model.fc2.poly_lora_B"] = Tensor.zeros([1, 2, 2, 8])
        XCTAssertThrowsError(try reloaded.loadAdapterTensors(tensors)) {
            XCTAssertEqual("\($0)", "adapter: tensor 'base_model.model.fc2.poly_lora_B' has shape [1, 2, 2, 8], the model expects [1, 2, 2, 4]")
        }
        tensors = try peft.adapterTensors()
        tensors["base_model.model.fc3.poly_lora_A"] = Tensor.zeros([1])
        XCTAssertThrowsError(try reloaded.loadAdapterTensors(tensors)) {
            XCTAssertEqual("\($0)", "adapter: unexpected tensor 'base_model.model.fc3.poly_lora_A' (the model has no such adapter parameter)")
        }
        tensors = try peft.adapterTensors()
        tensors["base_model.model.fc1.poly_lora_A"] = nil
        XCTAssertThrowsError(try reloaded.loadAdapterTensors(tensors)) {
            XCTAssertEqual("\($0)", "adapter: missing tensor 'base_model.model.fc1.poly_lora_A'")
        }
        // Non-finite weights are refused by default, naming the tensor and the element, and accepted on request.
        for bad in [Float.nan, .infinity, -.infinity] {
            tensors = try peft.adapterTensors()
            let original = tensors["base_model.model.fc1.poly_lora_B"]!
            var b = original.scalars
            b[5] = bad
            tensors["base_model.model.fc1.poly_lora_B"] = Tensor(b, shape: original.shape)
            XCTAssertThrowsError(try reloaded.loadAdapterTensors(tensors)) {
                XCTAssertEqual("\($0)", "adapter: tensor 'base_model.model.fc1.poly_lora_B' holds \(bad) at flat index 5; "
                    + "non-finite weights are refused")
                XCTAssertTrue($0 is NonFiniteWeightsError)
            }
            XCTAssertNoThrow(try reloaded.loadAdapterTensors(tensors, allowNonFinite: true))
        }
        try PeftAdapterFolder.write(config: peft.config.json, tensors: tensors, to: dir)
        XCTAssertThrowsError(try PeftModel.load(from: dir, into: try makeMLP()))
        XCTAssertNoThrow(try PeftModel.load(from: dir, into: try makeMLP(), allowNonFinite: true))
    }
}
