import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// The checks every golden case made from the adapters library goes through (LoRA, prefix tuning, their unions).
enum AdapterHubGolden {
    /// Compares the eval output with `outputs.safetensors`' `output` and the output with adapters disabled with its
    /// `base_output`; returns the file's tensors and the eval forward's recorder (gates, slots).
    static func checkOutputs(_ subject: GoldenConformanceTests.Subject, in dir: URL, rtol: Float,
                             file: StaticString = #filePath, line: UInt = #line) throws -> (outputs: [String: Tensor], recorder: Recorder) {
        let name = dir.lastPathComponent
        let outputs = try Safetensors.read(dir.appendingPathComponent("outputs.safetensors"))
        let recorder = Recorder()
        let y = try subject.forward(Context(mode: .eval, recordsGradients: false, recorder: recorder), false).output
        PolyPEFTTests.assertGolden(y.value, outputs["output"]!, rtol: rtol, "\(name) output", file: file, line: line)
        let off = Context.inference()
        off.adaptersEnabled = false
        PolyPEFTTests.assertGolden(try subject.forward(off, false).output.value, outputs["base_output"]!, rtol: rtol,
                                   "\(name) base_output", file: file, line: line)
        return (outputs, recorder)
    }

    /// Runs one case folder of a golden suite made from the adapters library: loads `adapter/` (the library's
    /// folder), compares the eval output, the base output with adapters disabled, every gating score and every
    /// gradient of sum(output^2), then writes the adapter back and compares it byte for byte with `written`.
    /// Returns 1 when the case has gating scores (all compared).
    static func runCase(_ c: JSONValue, in dir: URL, rtol: Float, written: URL) throws -> Int {
        func assertGolden(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
            PolyPEFTTests.assertGolden(actual, expected, rtol: rtol, what, file: file, line: line)
        }
        let name = dir.lastPathComponent
        let subject = try GoldenConformanceTests.makeSubject(c, dir)
        let folder = dir.appendingPathComponent("adapter")
        let library = try AdapterHubFolder.read(from: folder)
        let peft = try PeftModel.loadAdapterHub(from: folder, into: subject.model)
        XCTAssertEqual(peft.config is ConfigUnion, c["config"]?["architecture"]?.stringValue == "union", name)

        let (outputs, recorder) = try checkOutputs(subject, in: dir, rtol: rtol)
        let gates = outputs.filter { $0.key.hasPrefix("gate.") }
        for (key, expected) in gates {
            guard let actual = recorder[key] else { XCTFail("\(name): no gate recorded for \(key)"); continue }
            XCTAssertEqual(actual.shape, expected.shape, "\(name) \(key)")
            assertGolden(actual, expected, "\(name) \(key)")
        }
        XCTAssertEqual(Set(recorder.values.keys.filter { $0.hasPrefix("gate.") }), Set(gates.keys), "\(name): the same gates")

        // Gradients, by the library's parameter names.
        let grads = try Safetensors.read(dir.appendingPathComponent("grads.safetensors"))
        peft.zeroGrad()
        let loss = try subject.forward(Context(mode: .eval), false).output.squared().sum()
        assertGolden(try loss.value.reshaped([1]), grads["loss"]!, "\(name) loss")
        try loss.backward()
        let theirs = Dictionary(uniqueKeysWithValues: try peft.adapterHubKeyTable(name: library.name).map { ($0.ours, $0.theirs[0]) })
        var compared = 0
        for (key, p) in peft.adapterParameters() {
            guard let their = theirs[key], let expected = grads["grad." + their] else {
                XCTFail("\(name): no golden gradient for \(key)"); continue
            }
            assertGolden(p.grad ?? Tensor.zeros(p.value.shape), expected, "\(name) grad \(their)")
            compared += 1
        }
        XCTAssertEqual(compared, grads.keys.filter { $0.hasPrefix("grad.") }.count, "\(name): every gradient compared")

        // Written back: the library's folder, byte for byte.
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("adapterhub-golden-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try peft.saveAdapterHub(to: out, name: library.name)
        for file in [AdapterHubFolder.configFileName, AdapterHubFolder.weightsFileName] {
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(file)), try Data(contentsOf: written.appendingPathComponent(file)),
                           "\(name) \(file)")
        }
        return gates.isEmpty ? 0 : 1
    }
}
