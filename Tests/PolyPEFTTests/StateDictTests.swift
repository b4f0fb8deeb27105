import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class StateDictTests: XCTestCase {
    func makeMLP() throws -> MLP {
        var g = Xoshiro256(seed: 1)
        return try MLP([.linear(name: "fc1", inFeatures: 3, outFeatures: 4, bias: true), .activation(.tanh),
                        .linear(name: "fc2", inFeatures: 4, outFeatures: 2, bias: false)], using: &g)
    }

    func testLoadStateDictErrorsNameKeyAndShapes() throws {
        let m = try makeMLP()
        var sd = m.stateDict()
        XCTAssertEqual(sd.keys.sorted(), ["fc1.bias", "fc1.weight", "fc2.weight"])
        sd["fc1.weight"] = Tensor.zeros([4, 5])
        XCTAssertThrowsError(try m.loadStateDict(sd, source: "model.safetensors")) {
            XCTAssertEqual("\($0)", "model.safetensors: tensor 'fc1.weight' has shape [4, 5], the model expects [4, 3]")
        }
        sd = m.stateDict()
        sd["fc3.weight"] = Tensor.zeros([1])
        XCTAssertThrowsError(try m.loadStateDict(sd)) {
            XCTAssertEqual("\($0)", "state dict: unexpected tensor 'fc3.weight' (the model has no such parameter)")
        }
        XCTAssertNoThrow(try m.loadStateDict(sd, strict: false))
        sd = m.stateDict()
        sd["fc2.weight"] = nil
        XCTAssertThrowsError(try m.loadStateDict(sd)) { XCTAssertEqual("\($0)", "state dict: missing tensor 'fc2.weight'") }
        // Nothing changes when loading fails.
        let before = m.stateDict()
        sd = before.mapValues { $0 + 1 }
        sd["fc1.bias"] = Tensor.zeros([9])
        XCTAssertThrowsError(try m.loadStateDict(sd))
        XCTAssertEqual(m.stateDict(), before)
    }

    /// Base weights from a Hugging Face model folder (sharded) land on the modules by name.
    func testLoadFromShardedHFFolder() throws {
        let source = try makeMLP()
        for (_, p) in source.namedParameters() { p.value = p.value + 0.5 }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try HFModelFolder.write(config: ["model_type": "mlp"], tensors: source.stateDict(), to: dir, maxShardBytes: 40)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors.index.json").path))
        let target = try makeMLP()
        try target.loadStateDict(try HFModelFolder.readWeights(from: dir), source: dir.path)
        XCTAssertEqual(target.stateDict(), source.stateDict())
    }

    func testAtomicDirectoryReplaceAndRecovery() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("ad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: parent) }
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let target = parent.appendingPathComponent("checkpoint")
        try AtomicDirectory.replace(target, with: ["a.txt": Data("1".utf8), "b.txt": Data("1".utf8)])
        try AtomicDirectory.replace(target, with: ["a.txt": Data("2".utf8)])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target.path), ["a.txt"])
        XCTAssertEqual(try String(contentsOf: target.appendingPathComponent("a.txt"), encoding: .utf8), "2")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parent.path), ["checkpoint"])
        // A crash between the two renames leaves only the previous copy: resolve finds it.
        try FileManager.default.moveItem(at: target, to: parent.appendingPathComponent("checkpoint.old"))
        XCTAssertEqual(AtomicDirectory.resolve(target)?.lastPathComponent, "checkpoint.old")
        // A failed write (bad file name) leaves the previous directory in place and no temporary behind.
        try AtomicDirectory.replace(target, with: ["a.txt": Data("3".utf8)])
        XCTAssertThrowsError(try AtomicDirectory.replace(target, with: ["x/y": Data()]))
        XCTAssertEqual(try String(contentsOf: target.appendingPathComponent("a.txt"), encoding: .utf8), "3")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parent.path).sorted(), ["checkpoint"])
    }
}
