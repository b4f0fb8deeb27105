import Foundation
import XCTest
import PolyPEFT

/// The README's library example, verbatim but for the output folder, so the documentation keeps compiling.
final class ReadmeExampleTests: XCTestCase {
    func testReadmeExample() throws {
        var rng = Xoshiro256(seed: 0)
        let base = try MLP([.linear(name: "fc1", inFeatures: 32, outFeatures: 64, bias: true), .activation(.relu),
                            .linear(name: "fc2", inFeatures: 64, outFeatures: 8, bias: true)], using: &rng)
        let config = PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: 18, nSkills: 6, nSplits: 1)
        let peft = try PeftModel(wrapping: base, config: config, using: &rng)
        XCTAssertEqual(peft.parameterSummary(), "trainable params: 2,232 || all params: 4,864 || trainable%: 45.8882")

        let x = Tensor.normal([4, 32], using: &rng)
        let ctx = Context(mode: .train, taskIDs: [0, 3, 3, 17], rng: rng)
        let loss = try Loss.mse(try base(Variable(x), ctx), Tensor.zeros([4, 8]))
        try loss.backward()
        XCTAssertNotNil(peft.adapterParameters().first { $0.key.hasSuffix("fc1.poly_lora_A") }?.parameter.grad)
        XCTAssertNil(base.child("fc1")?.child("base_layer").map { ($0 as! Linear).weight.grad } ?? nil)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try peft.save(to: dir)
        let routing = try peft.routing()
        XCTAssertEqual(routing.map(\.weights.shape), [[18, 1, 6], [18, 1, 6]])
    }
}
