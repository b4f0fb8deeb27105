import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// Arrow over an adapter library against PEFT's `create_arrow_model` (0.21.2): every case of `golden_arrow/`
/// (`Benchmarks/golden/make_arrow_cases.py`) builds a library from its expert folders, routes them in the base model
/// and must give PEFT's prototypes (up to sign), routing coefficients and output; GenKnowSub included. Also the
/// library's checks and its folder round trip.
final class ArrowTests: XCTestCase {
    static var directory: URL { Bundle.module.url(forResource: "golden_arrow", withExtension: nil)! }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func library(_ c: JSONValue, in dir: URL) throws -> AdapterLibrary {
        var library = AdapterLibrary()
        for e in (c["experts"]?.arrayValue ?? []) + (c["general_experts"]?.arrayValue ?? []) {
            try library.add(name: e["name"]!.stringValue!, directory: dir.appendingPathComponent(e["folder"]!.stringValue!))
        }
        return library
    }

    func testGoldenCases() throws {
        let index = try JSONValue(parsing: try Data(contentsOf: Self.directory.appendingPathComponent("cases.json")))
        let cases = index["cases"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 4)
        var modules = 0
        for c in cases {
            let name = c["name"]!.stringValue!
            let dir = Self.directory.appendingPathComponent(name)
            let subject = try GoldenConformanceTests.makeSubject(c, dir)
            let lib = try library(c, in: dir)
            let general = (c["general_experts"]?.arrayValue ?? []).map { $0["name"]!.stringValue! }
            let config = try ArrowConfig(json: c["arrow_config"]!, context: name)
            let layers = try Arrow.attach(to: subject.model, library: lib, general: general, config: config)
            XCTAssertEqual(layers.count, c["arrow_modules"]?.arrayValue?.count, name)
            let outputs = try Safetensors.read(dir.appendingPathComponent("outputs.safetensors"))
            for layer in layers {
                // Prototypes agree up to sign, per expert.
                let theirs = outputs["proto.\(layer.path)"]!, e = layer.experts.count, n = layer.inFeatures
                for i in 0..<e {
                    let p = Array(layer.prototypes.scalars[(i * n)..<((i + 1) * n)]), q = Array(theirs.scalars[(i * n)..<((i + 1) * n)])
                    let dot = zip(p, q).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                    XCTAssertEqual(Swift.abs(dot), 1, accuracy: 1e-5, "\(name) \(layer.path) prototype \(i)")
                }
            }
            let recorder = Recorder()
            let y = try subject.forward(Context(mode: .eval, recordsGradients: false, recorder: recorder), false).output
            assertGolden(y.value, outputs["output"]!, rtol: 1e-5, "\(name) output")
            for layer in layers {
                let got = try XCTUnwrap(recorder["arrow.\(layer.path).coefficients"], "\(name) \(layer.path)")
                assertGolden(got, outputs["coeff.\(layer.path)"]!, rtol: 1e-5, "\(name) \(layer.path) coefficients")
                modules += 1
            }
            let off = Context.inference()
            off.adaptersEnabled = false
            assertGolden(try subject.forward(off, false).output.value, outputs["base_output"]!, rtol: 1e-5, "\(name) base")
        }
        XCTAssertGreaterThanOrEqual(modules, 26)
    }

    /// The library refuses adapters that do not fit together, naming both, and round-trips its folder.
    func testLibraryChecksAndFolder() throws {
        let dir = Self.directory.appendingPathComponent("arrow_temp_bert")
        let other = Self.directory.appendingPathComponent("arrow_bert")
        var lib = AdapterLibrary()
        try lib.add(name: "a", directory: dir.appendingPathComponent("experts/task_0"), metadata: ["task": "x"], dataSize: 40)
        try lib.add(name: "b", directory: dir.appendingPathComponent("experts/task_1"))
        XCTAssertEqual(lib.modulePaths.count, 6)
        XCTAssertTrue(message { try lib.add(name: "a", directory: dir.appendingPathComponent("experts/task_2")) }.contains("already has 'a'"))
        XCTAssertTrue(message { try lib.add(name: "c", directory: other.appendingPathComponent("experts/task_0")) }
            .contains("'a' adapts; a library's adapters adapt the same modules"))
        XCTAssertTrue(message { try lib.add(name: "../x", directory: dir) }.contains("cannot name a folder"))
        XCTAssertTrue(message { try lib.add(name: "d", directory: dir) }.contains("adapter_config.json"))
        XCTAssertTrue(message { _ = try lib.factors("zzz") }.contains("has no adapter 'zzz' (it has: a, b)"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("library-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try lib.save(to: out)
        let back = try AdapterLibrary.open(out)
        XCTAssertEqual(back.names, ["a", "b"])
        XCTAssertEqual(back.entries[0].metadata["task"], "x")
        XCTAssertEqual(back.entries[0].dataSize, 40)
        XCTAssertEqual(try back.factors("b")["encoder.layer.1.attention.self.key"]!.a, try lib.factors("b")["encoder.layer.1.attention.self.key"]!.a)
        // Arrow's own checks.
        let bert = try BertModel(config: BertConfig(json: try JSONValue(parsing: try Data(contentsOf: dir.appendingPathComponent("base_config.json")))),
                                 addPoolingLayer: false)
        XCTAssertTrue(message { try Arrow.attach(to: bert, library: lib, config: ArrowConfig(topK: 3)) }.contains("top_k 3 is more than the 2 experts"))
        XCTAssertTrue(message { try Arrow.attach(to: bert, library: lib, config: ArrowConfig(useGKS: true)) }.contains("use_gks needs general adapters"))
        XCTAssertTrue(message { try Arrow.attach(to: bert, library: lib, config: ArrowConfig(routerTemperature: 0)) }
            .contains("router_temperature must be a positive number"))
    }

    /// The prototype is the top right singular vector of B A, whatever the start, and zero for a zero update.
    func testPrototypeIsTheTopSingularVector() throws {
        let a = Tensor([1, 0, 0, 0, 2, 0], shape: [2, 3]), b = Tensor([3, 0, 0, 1], shape: [2, 2])
        // B A = [[3, 0, 0], [0, 2, 0]]: the top right singular vector is e_0.
        for seed in [0, 1, 7] {
            let v = ArrowLinear.topRightSingularVector(a: a, b: b, seed: seed)
            XCTAssertEqual(Swift.abs(v[0]), 1, accuracy: 1e-6)
            XCTAssertEqual(v[1], 0, accuracy: 1e-6)
        }
        XCTAssertEqual(ArrowLinear.topRightSingularVector(a: a, b: Tensor.zeros([2, 2]), seed: 0), [0, 0, 0])
    }
}
