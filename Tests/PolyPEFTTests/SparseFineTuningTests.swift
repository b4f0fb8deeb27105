import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Unstructured sparse fine-tuning (`POLYPEFT_SPARSE`): the sparse add against a naive loop, the global choice by
/// magnitude and by Fisher information, gradients by finite differences, exact merging, and saving as indices plus
/// values.
final class SparseFineTuningTests: XCTestCase {
    func mlp(seed: UInt64 = 1) throws -> MLP {
        var rng = Xoshiro256(seed: seed)
        return try MLP([.linear(name: "fc1", inFeatures: 5, outFeatures: 7, bias: true), .activation(.tanh),
                        .linear(name: "fc2", inFeatures: 7, outFeatures: 3, bias: true)], using: &rng)
    }

    func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }

    func testSparseAddAndItsGradient() throws {
        let x = randomTensor([3, 5], seed: 1), v = randomTensor([4], seed: 2)
        let at = [0, 7, 8, 14]
        var naive = x.scalars
        for (i, p) in at.enumerated() { naive[p] += v.scalars[i] }
        XCTAssertEqual(try nonContiguous(x).addingSparse(v, at: at), Tensor(naive, shape: [3, 5]))
        XCTAssertEqual(try x.flatGather([14, 0]), Tensor([x.scalars[14], x.scalars[0]], shape: [2]))
        try gradCheck([x, v]) { try $0[0].addingSparse($0[1], at: at).tanh() }
        XCTAssertTrue(message { _ = try x.addingSparse(v, at: [0, 1, 2, 15]) }.contains("outside"))
        XCTAssertTrue(message { _ = try x.addingSparse(v, at: [0]) }.contains("4 values for 1 indices"))
    }

    func testMagnitudeChoiceForwardMergeAndSaving() throws {
        let model = try mlp()
        let x = randomTensor([6, 5], seed: 3)
        let base = try model(Variable(x), Context.inference()).value
        let weights = ["fc1", "fc2"].map { (model.module(at: $0) as! Linear).weight.value }
        var rng = Xoshiro256(seed: 0)
        let peft = try PeftModel(wrapping: model, config: SparseConfig(targetModules: .names(["fc1", "fc2"]), budget: 9), using: &rng)
        let layers = peft.sparseLayers
        XCTAssertEqual(layers.map(\.path), ["fc1", "fc2"])
        XCTAssertEqual(layers.reduce(0) { $0 + $1.entries.count }, 9)
        // The 9 largest |w| over both weights together.
        var all: [(Float, Int, Int)] = []
        for (l, w) in weights.enumerated() { for (i, v) in w.scalars.enumerated() { all.append((Swift.abs(v), l, i)) } }
        all.sort { $0.0 > $1.0 }
        for l in 0..<2 { XCTAssertEqual(layers[l].entries, all.prefix(9).filter { $0.1 == l }.map(\.2).sorted()) }
        XCTAssertEqual(peft.config.json["budget_pattern"], .object(["fc1": .int(layers[0].entries.count), "fc2": .int(layers[1].entries.count)]))
        XCTAssertEqual(peft.adapterParameters().map(\.key), ["base_model.model.fc1.sparse_values", "base_model.model.fc2.sparse_values"])
        assertClose(try model(Variable(x), Context.inference()).value, base, rtol: 0, atol: 0, "values start at 0")

        for (i, l) in layers.enumerated() { l.values.value = randomTensor([l.entries.count], seed: UInt64(10 + i)) }
        let y = try model(Variable(x), Context.inference()).value
        // fc1 against x (W + D)^T + b.
        let fc1 = layers[0]
        let w1 = try fc1.linear.weight.value.addingSparse(fc1.values.value, at: fc1.entries)
        assertClose(try fc1.forward(Variable(x), Context.inference()).value,
                    try x.matmul(w1.transposed()) + fc1.linear.bias!.value, rtol: 1e-6, atol: 1e-6)
        try paramGradCheck(layers.map(\.values)) { try model(Variable(x), Context(mode: .eval)) }

        try peft.merge()
        assertClose(try model(Variable(x), Context.inference()).value, y, rtol: 1e-6, atol: 1e-6, "merged")
        let mergedW = fc1.linear.weight.value.scalars
        for i in 0..<mergedW.count where !fc1.entries.contains(i) { XCTAssertEqual(mergedW[i], weights[0].scalars[i]) }
        try peft.unmerge()
        XCTAssertEqual(fc1.linear.weight.value, weights[0], "unmerged: the base's own entries, bit for bit")

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sparse-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try peft.save(to: url)
        let saved = try Safetensors.read(url.appendingPathComponent("adapter_model.safetensors"))
        let idx = saved["base_model.model.fc1.sparse_indices"]!
        XCTAssertEqual(idx.shape, [2, fc1.entries.count])
        XCTAssertEqual((0..<fc1.entries.count).map { Int(idx[0, $0]) * 5 + Int(idx[1, $0]) }, fc1.entries, "rows and columns")
        let fresh = try mlp()
        let loaded = try PeftModel.load(from: url, into: fresh)
        XCTAssertEqual(loaded.sparseLayers.map(\.entries), layers.map(\.entries))
        assertClose(try fresh(Variable(x), Context.inference()).value, y, rtol: 0, atol: 0)

        // A file whose indices are not positions of the weight.
        var bad = saved
        var rows = idx.scalars
        rows[0] = 0.5
        bad["base_model.model.fc1.sparse_indices"] = Tensor(rows, shape: idx.shape)
        let other = try PeftModel(wrapping: try mlp(), config: loaded.config, using: &rng)
        XCTAssertTrue(message { try other.loadAdapterTensors(bad) }.contains("fc1.sparse_indices: entry 0 is (0.5"))
    }

    func testFisherChoiceTrainsOnlyTheChosenEntries() throws {
        let model = try mlp(seed: 2)
        let x = randomTensor([8, 5], seed: 4), target = randomTensor([8, 3], seed: 5)
        func loss(_ b: Int) throws -> Variable {
            let rows = Array((b * 4)..<(b * 4 + 4))
            return try Loss.mse(try model(Variable(try x.indexSelect(axis: 0, rows)), Context(mode: .eval)),
                                try target.indexSelect(axis: 0, rows))
        }
        // The expected scores: sum over the two batches of the squared gradient of the base.
        var expected: [Tensor] = []
        for name in ["fc1", "fc2"] {
            let w = (model.module(at: name) as! Linear).weight
            w.requiresGrad = true
            var s = Tensor.zeros(w.value.shape)
            for b in 0..<2 { w.zeroGrad(); try loss(b).backward(); s = try s + w.grad!.squared() }
            expected.append(s)
        }
        model.zeroGrad()
        var rng = Xoshiro256(seed: 0)
        let peft = try PeftModel(wrapping: model, config: SparseConfig(targetModules: .names(["fc1", "fc2"]), density: 0.2,
                                                                       selection: .fisher), using: &rng)
        let weights = peft.sparseLayers.map { $0.linear.weight.value }
        try peft.selectSparseMask(fisherBatches: 2, loss: loss)
        var all: [(Float, Int, Int)] = []
        for (l, s) in expected.enumerated() { for (i, v) in s.scalars.enumerated() { all.append((v, l, i)) } }
        all.sort { $0.0 != $1.0 ? $0.0 > $1.0 : ($0.1, $0.2) < ($1.1, $1.2) }
        let k = Int((0.2 * 56).rounded())
        for (l, layer) in peft.sparseLayers.enumerated() {
            XCTAssertEqual(layer.entries, all.prefix(k).filter { $0.1 == l }.map(\.2).sorted(), layer.path)
            XCTAssertFalse(layer.linear.weight.requiresGrad, "the base is frozen again")
        }
        XCTAssertEqual(peft.config.json["selection"], "fisher")

        let opt = Adam.adamW([ParameterGroup(parameters: peft.adapterParameters().map { ($0.key, $0.parameter) }, learningRate: 0.05)])
        let first = try loss(0).value.scalars[0] + loss(1).value.scalars[0]
        for step in 0..<40 {
            peft.zeroGrad()
            try loss(step % 2).backward()
            opt.step()
        }
        XCTAssertLessThan(try loss(0).value.scalars[0] + loss(1).value.scalars[0], first)
        XCTAssertEqual(peft.sparseLayers.map { $0.linear.weight.value }, weights, "only the sparse values train")
        XCTAssertTrue(message { try peft.selectSparseMask(fisherBatches: 0, loss: loss) }.contains("at least 1 batch"))
    }

    func testConfigErrors() throws {
        XCTAssertTrue(message { _ = try SparseConfig(json: ["density": 0]) }.contains("density"))
        XCTAssertTrue(message { _ = try SparseConfig(json: ["budget": 0]) }.contains("budget"))
        XCTAssertTrue(message { _ = try SparseConfig(json: ["selection": "random"]) }.contains("selection"))
        XCTAssertTrue(message { _ = try SparseConfig(json: ["budget_pattern": ["fc1": -1]]) }.contains("budget_pattern"))
        var rng = Xoshiro256(seed: 0)
        var c = SparseConfig(targetModules: .names(["fc1", "fc2"]))
        c.budgetPattern = ["fc1": 3]
        XCTAssertTrue(message { _ = try PeftModel(wrapping: try self.mlp(), config: c, using: &rng) }.contains("no count for the targeted layer 'fc2'"))
        c.budgetPattern = ["fc1": 3, "fc2": 2, "fc9": 1]
        XCTAssertTrue(message { _ = try PeftModel(wrapping: try self.mlp(), config: c, using: &rng) }.contains("'fc9'"))
        c.budgetPattern = ["fc1": 99, "fc2": 2]
        XCTAssertTrue(message { _ = try PeftModel(wrapping: try self.mlp(), config: c, using: &rng) }.contains("99 entries"))
        let lora = try PeftModel(wrapping: try mlp(), config: LoraConfig(r: 2, targetModules: .names(["fc1"])), using: &rng)
        XCTAssertTrue(message { try lora.selectSparseMask(fisherBatches: 1) { _ in Variable(Tensor.zeros([1])) } }.contains("not sparse"))
    }
}
