import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// SSF (PolyPEFT's `POLYPEFT_SSF`): the per-feature scale and shift against its formula, gradients by finite
/// differences, exact merging into linear layers and norms, and the errors where a shift has no bias to go into.
final class SSFTests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    func testScalesAndShiftsTheOutputAndMergesIntoLinearsAndNorms() throws {
        var rng = Xoshiro256(seed: 4)
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 2)
        let base = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        let peft = try PeftModel(wrapping: bert, config: SSFConfig(initStd: 0.3), using: &rng)
        XCTAssertEqual(peft.config.json["peft_type"], "POLYPEFT_SSF")
        // BERT's default targets: every linear layer and norm of the blocks (and the embeddings' norm).
        let paths = peft.adapters.map(\.path)
        XCTAssertTrue(paths.contains("encoder.layer.0.attention.self.query"))
        XCTAssertTrue(paths.contains("encoder.layer.1.output.LayerNorm"))
        XCTAssertTrue(paths.contains("embeddings.LayerNorm"))
        XCTAssertTrue(paths.contains("encoder.layer.0.intermediate.dense"))
        XCTAssertEqual(peft.adapterParameters().count, 2 * paths.count)
        let scale0 = peft.adapterParameters()[0].parameter.value
        XCTAssertGreaterThan(try (scale0 - 1).abs().max().scalars[0], 0.01, "N(1, 0.3^2)")

        // One layer against the formula.
        let q = try XCTUnwrap(bert.module(at: "encoder.layer.0.attention.self.query") as? SSFLayer)
        let x = randomTensor([3, 8], seed: 5)
        let expected = try (try q.base.forward(Variable(x), Context.inference()).value * q.scale.value) + q.shift.value
        assertClose(try q.forward(Variable(x), Context.inference()).value, expected, rtol: 1e-6, atol: 1e-6)
        let norm = try XCTUnwrap(bert.module(at: "encoder.layer.0.output.LayerNorm") as? SSFLayer)
        try paramGradCheck([q.scale, q.shift, norm.scale, norm.shift]) {
            try bert.forward(inputIDs: self.ids, attentionMask: self.mask, tokenTypeIDs: self.types, Context(mode: .eval)).sequence
        }

        let y = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        XCTAssertGreaterThan(try (y - base).abs().max().scalars[0], 1e-2)
        try peft.merge()
        let merged = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value
        assertClose(merged, y, rtol: 1e-4, atol: 1e-4, "merged = adapted")
        try peft.unmerge()
        let off = Context.inference()
        off.adaptersEnabled = false
        assertClose(try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, off).sequence.value, base, rtol: 0, atol: 0,
                    "unmerged: the base exactly")

        // Saved and loaded.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ssf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try peft.save(to: url)
        let fresh = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 2)
        _ = try PeftModel.load(from: url, into: fresh)
        assertClose(try fresh.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, Context.inference()).sequence.value,
                    y, rtol: 0, atol: 0)
    }

    func testShiftsWithoutABiasAndConfigErrors() throws {
        var rng = Xoshiro256(seed: 6)
        // T5's norms and linears have no bias: a shift cannot merge, a zero shift can.
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 3)
        let peft = try PeftModel(wrapping: t5, config: SSFConfig(targetModules: .names(["layer_norm", "wo"])), using: &rng)
        do { try peft.merge(); XCTFail("merged a shift into a base without a bias") } catch {
            XCTAssertTrue("\(error)".contains("has no bias, so the SSF shift"), "\(error)")
        }
        XCTAssertTrue(peft.adapterLayers.allSatisfy { $0.layer.mergedUpdate == nil }, "all or nothing")
        for (_, a) in peft.adapterLayers { (a as! SSFLayer).shift.value = Tensor.zeros((a as! SSFLayer).shift.value.shape) }
        let dec = [[0, 3, 4], [0, 5, 6]]
        let y = try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context.inference()).value
        try peft.merge()
        assertClose(try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, Context.inference()).value, y,
                    rtol: 1e-4, atol: 1e-4)

        let identity = try PeftModel(wrapping: try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false),
                                     config: SSFConfig(targetModules: .names(["value"]), initStd: 0), using: &rng)
        XCTAssertEqual(identity.adapterParameters()[0].parameter.value, Tensor.ones([8]))
        XCTAssertEqual(identity.adapterParameters()[1].parameter.value, Tensor.zeros([8]))
        XCTAssertThrowsError(try SSFConfig(json: ["init_std": -1])) { XCTAssertTrue("\($0)".contains("init_std"), "\($0)") }
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false)
        XCTAssertThrowsError(try PeftModel(wrapping: bert, config: SSFConfig(targetModules: .names(["intermediate_act_fn"])), using: &rng)) {
            XCTAssertTrue("\($0)".contains("linear layers and norms"), "\($0)")
        }
        let c = SSFConfig(targetModules: .names(["query"]), initStd: 0.05)
        XCTAssertEqual(try SSFConfig(json: c.json), c)
    }
}
