import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// Bottleneck adapters, Compacter and unions of them against the adapters library (1.3.0): for every case of
/// `golden_bottleneck/`
/// (`Benchmarks/golden/make_bottleneck_cases.py`), the library's config (`adapter/adapter_config.json`'s `config`)
/// builds the adapter on the same base, its parameters are loaded by name, and the eval output, the base with
/// adapters disabled, every slot's input and output, the gate values and the gradients of sum(output^2) for every
/// adapter tensor must agree.
final class BottleneckGoldenTests: XCTestCase {
    let rtol: Float = 1e-5

    static var directory: URL { Bundle.module.url(forResource: "golden_bottleneck", withExtension: nil)! }

    func assertGolden(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        PolyPEFTTests.assertGolden(actual, expected, rtol: rtol, what, file: file, line: line)
    }

    /// The adapters library's parameter name as a PolyPEFT key: its adapter-name level dropped
    /// (`….adapters.golden.adapter_up.weight` -> `base_model.model.….adapters.adapter_up.weight`,
    /// `shared_parameters.golden.phm_rule` -> `base_model.model.shared_parameters.phm_rule`).
    static func key(_ name: String, adapter: String) -> String {
        PeftModel.keyPrefix + name.replacingOccurrences(of: "adapters.\(adapter).", with: "adapters.")
            .replacingOccurrences(of: "shared_parameters.\(adapter).", with: "shared_parameters.")
    }

    func testGoldenCases() throws {
        let index = try JSONValue(parsing: try Data(contentsOf: Self.directory.appendingPathComponent("cases.json")))
        let adapterName = index["adapter_name"]?.stringValue ?? "golden"
        let cases = index["cases"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 18)
        var checked = 0
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            do {
                try runCase(c, in: Self.directory.appendingPathComponent(name), adapter: adapterName)
                checked += 1
            } catch {
                XCTFail("golden case \(name) could not run: \(error)")
            }
        }
        XCTAssertEqual(checked, cases.count)
    }

    func runCase(_ c: JSONValue, in dir: URL, adapter: String) throws {
        let name = dir.lastPathComponent
        let subject = try GoldenConformanceTests.makeSubject(c, dir)
        let saved = try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("adapter/adapter_config.json")))
        let config = try AdapterHubMethods.config(adapterHubConfig: saved["config"] ?? .null, context: "\(name) adapter_config.json")
        let parts = (config as? ConfigUnion)?.configs.compactMap { $0 as? BnConfig } ?? [config as! BnConfig]
        var rng = Xoshiro256(seed: 0)
        let peft = try PeftModel(wrapping: subject.model, config: config, using: &rng)
        let params = try Safetensors.read(dir.appendingPathComponent("adapter_parameters.safetensors"))
        var tensors: [String: Tensor] = [:]
        for (k, t) in params { tensors[Self.key(k, adapter: adapter)] = t }
        try peft.loadAdapterTensors(tensors, source: "\(name)/adapter_parameters.safetensors")

        let (outputs, recorder) = try AdapterHubGolden.checkOutputs(subject, in: dir, rtol: rtol)
        var slots = 0
        for (key, expected) in outputs where key.hasPrefix("slot.") {
            // the library's slot is the host module; ours records under the host path too
            guard let actual = recorder[key] else { XCTFail("\(name): nothing recorded for \(key)"); continue }
            assertGolden(actual, expected, "\(name) \(key)")
            slots += 1
        }
        XCTAssertGreaterThan(slots, 0, "\(name): no slot compared")
        let gates = outputs.filter { $0.key.hasPrefix("gate.") }
        if parts.contains(where: \.useGating) {
            XCTAssertFalse(gates.isEmpty, "\(name): no gate values in the case")
            for (key, expected) in gates {
                guard let actual = recorder[key] else { XCTFail("\(name): no gate recorded for \(key)"); continue }
                assertGolden(actual, expected, "\(name) \(key)")
            }
        }

        let grads = try Safetensors.read(dir.appendingPathComponent("grads.safetensors"))
        peft.zeroGrad()
        let out = try subject.forward(Context(mode: .eval), false).output
        let loss = try out.squared().sum()
        assertGolden(try loss.value.reshaped([1]), grads["loss"]!, "\(name) loss")
        try loss.backward()
        let byKey = Dictionary(uniqueKeysWithValues: peft.adapterParameters().map { ($0.key, $0.parameter) })
        var compared = 0
        for (k, expected) in grads where k.hasPrefix("grad.") {
            let key = Self.key(String(k.dropFirst(5)), adapter: adapter)
            guard let p = byKey[key] else { XCTFail("\(name): no parameter for \(k)"); continue }
            assertGolden(p.grad ?? Tensor.zeros(p.value.shape), expected, "\(name) \(k)")
            compared += 1
        }
        XCTAssertEqual(compared, byKey.count, "\(name): every adapter parameter has a golden gradient")
    }
}
