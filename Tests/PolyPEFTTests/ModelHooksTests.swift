import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The models' hooks for methods that are not layer wrappers: virtual tokens and `inputs_embeds`, residual slots,
/// and thrown errors for sublayers that cannot be replaced.
final class ModelHooksTests: XCTestCase {
    let ids = TokenBatchFixture.ids, mask = TokenBatchFixture.mask, types = TokenBatchFixture.types

    /// Virtual tokens from a plain tensor (what prompt tuning will supply).
    final class FixedTokens: VirtualTokenSource {
        let tokens: Parameter
        let keepsTokenTypes: Bool
        init(_ t: Tensor, keepsTokenTypes: Bool = true) {
            tokens = Parameter(t)
            self.keepsTokenTypes = keepsTokenTypes
        }
        func virtualTokens(batch: Int, _ ctx: Context) throws -> Variable? { ctx[tokens] }
    }

    /// A residual join that scales the sublayer's output: `norm(s y + h)`, with `s` learned.
    final class ScaledJoin: Module, ResidualJoin {
        let scale = Parameter(Tensor([2.5], shape: [1]))
        override init() {
            super.init()
            addParameter("scale", scale)
        }
        func join(_ y: Variable, residual h: Variable, norm: (any Layer)?, _ ctx: Context) throws -> Variable {
            let sum = try (try y * ctx[scale]) + h
            return try norm.map { try $0.forward(sum, ctx) } ?? sum
        }
    }

    func testBertVirtualTokensEqualInputsEmbedsWithExtendedMaskAndTypes() throws {
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 1)
        let virtual = randomTensor([1, 2, 8], seed: 2)
        let source = FixedTokens(virtual)
        bert.virtualTokens = source
        let y = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, .inference()).sequence
        XCTAssertEqual(y.shape, [2, 7, 8])
        // The same through inputs_embeds, with the mask and token types extended as PEFT does.
        bert.virtualTokens = nil
        let emb = try bert.child("embeddings", as: BertEmbeddings.self)
        let words = try emb.words(ids: ids.flatMap { $0 }, batch: 2, length: 5, .inference())
        let embeds = try Variable.concatenate([Variable(try virtual.expanded(to: [2, 2, 8]).contiguous()), words], axis: 1)
        let reference = try bert.forward(inputsEmbeds: embeds, attentionMask: mask.map { [1, 1] + $0 },
                                         tokenTypeIDs: types.map { [0, 0] + $0 }, .inference()).sequence
        assertClose(y.value, reference.value, rtol: 1e-6, atol: 1e-6)
        // A source that drops token types (PEFT's FEATURE_EXTRACTION) gives type 0 everywhere; disabled, the base.
        let dropped = try bert.forward(inputsEmbeds: embeds, attentionMask: mask.map { [1, 1] + $0 }, .inference()).sequence
        bert.virtualTokens = FixedTokens(virtual, keepsTokenTypes: false)
        assertClose(try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, .inference()).sequence.value,
                    dropped.value, rtol: 1e-6, atol: 1e-6)
        let off = Context.inference()
        off.adaptersEnabled = false
        XCTAssertEqual(try bert.forward(inputIDs: ids, attentionMask: mask, off).sequence.shape, [2, 5, 8])
        // Gradients reach the virtual tokens.
        bert.virtualTokens = source
        try paramGradCheck([source.tokens]) { try bert.forward(inputIDs: self.ids, attentionMask: self.mask, Context(mode: .eval)).sequence }
        XCTAssertThrowsError(try bert.forward(inputsEmbeds: Variable(Tensor.zeros([2, 5, 7])), .inference())) {
            XCTAssertEqual("\($0)", "bert inputs_embeds: shape [2, 5, 7] is not [B, T, 8]")
        }
    }

    func testT5VirtualTokensPrependToTheEncoder() throws {
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 3)
        let virtual = randomTensor([2, 3, 8], seed: 4)
        t5.virtualTokens = FixedTokens(virtual)
        let (states, m) = try t5.encode(inputIDs: ids, attentionMask: mask, .inference())
        XCTAssertEqual(states.shape, [2, 8, 8])
        XCTAssertEqual(m?.shape, [2, 1, 1, 8])
        t5.virtualTokens = nil
        let words = try t5.encoder.embed(ids: ids.flatMap { $0 }, batch: 2, length: 5, .inference())
        let (reference, _) = try t5.encode(inputsEmbeds: try Variable.concatenate([Variable(virtual), words], axis: 1),
                                           attentionMask: mask.map { [1, 1, 1] + $0 }, .inference())
        assertClose(states.value, reference.value, rtol: 1e-6, atol: 1e-6)
    }

    func testResidualSlotsReplaceTheJoinWhereverTheyAre() throws {
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 5)
        let hosts = bert.namedModules().compactMap { m in (m.module as? any ResidualSlotHost).map { (m.path, $0.location) } }
        XCTAssertEqual(hosts.map(\.0), ["encoder.layer.0.attention.output", "encoder.layer.0.output",
                                        "encoder.layer.1.attention.output", "encoder.layer.1.output"])
        XCTAssertEqual(hosts.map(\.1), [.attention, .feedForward, .attention, .feedForward])
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(layers: 1), seed: 6)
        let t5Hosts = t5.namedModules().compactMap { m in (m.module as? any ResidualSlotHost).map { "\(m.path) \($0.location.rawValue)" } }
        XCTAssertEqual(t5Hosts, ["encoder.block.0.layer.0 mh_adapter", "encoder.block.0.layer.1 output_adapter",
                                 "decoder.block.0.layer.0 mh_adapter", "decoder.block.0.layer.1 cross_adapter",
                                 "decoder.block.0.layer.2 output_adapter"])

        // A join with scale 1 is the default; with another scale it changes the output, and its gradient checks.
        let base = try bert.forward(inputIDs: ids, attentionMask: mask, .inference()).sequence.value
        let join = ScaledJoin()
        let host = try XCTUnwrap(bert.module(at: "encoder.layer.1.output") as? BertResidualOutput)
        try host.install(join)
        XCTAssertEqual(bert.namedParameters().filter { $0.name.contains("adapters") }.map(\.name), ["encoder.layer.1.output.adapters.scale"])
        join.scale.value = Tensor([1], shape: [1])
        assertClose(try bert.forward(inputIDs: ids, attentionMask: mask, .inference()).sequence.value, base, rtol: 1e-6, atol: 1e-6)
        join.scale.value = Tensor([2.5], shape: [1])
        XCTAssertGreaterThan(try (bert.forward(inputIDs: ids, attentionMask: mask, .inference()).sequence.value - base).abs().max().scalars[0], 1e-3)
        try paramGradCheck([join.scale]) { try bert.forward(inputIDs: self.ids, attentionMask: self.mask, Context(mode: .eval)).sequence }
        let off = Context.inference()
        off.adaptersEnabled = false
        assertClose(try bert.forward(inputIDs: ids, attentionMask: mask, off).sequence.value, base, rtol: 0, atol: 0,
                    "adapters disabled: the slot is skipped")
        XCTAssertThrowsError(try host.install(ScaledJoin())) {
            XCTAssertEqual("\($0)", "BertResidualOutput at output_adapter: the residual slot is already filled")
        }
        let ff = try XCTUnwrap(t5.module(at: "decoder.block.0.layer.2") as? T5LayerFF)
        try ff.install(ScaledJoin())
        XCTAssertNoThrow(try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: [[0, 3], [0, 4]], .inference()))
    }

    func testReplacingASublayerAModelReadsIsAThrownError() throws {
        let bert = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 7)
        try bert.replace(path: "encoder.layer.0.attention", with: Module())
        XCTAssertThrowsError(try bert.forward(inputIDs: ids, .inference())) {
            XCTAssertEqual("\($0)", "BertLayer.attention is a Module where a BertAttention is expected: this sublayer cannot be replaced or wrapped (adapters wrap layers that map one tensor to another)")
        }
        let t5 = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 8)
        try t5.replace(path: "decoder.block.1", with: Module())
        XCTAssertThrowsError(try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: [[0, 3], [0, 4]], .inference())) {
            XCTAssertEqual("\($0)", "t5: block.1 is a Module, not a T5Block (it cannot be replaced)")
        }
        let sa = try t5.encoder.child("block", as: ModuleList.self)[0].module(at: "layer.0")!
        try sa.replace(path: "SelfAttention", with: Module())
        XCTAssertThrowsError(try t5.encode(inputIDs: ids, attentionMask: mask, .inference())) {
            XCTAssertEqual("\($0)", "T5LayerAttention.SelfAttention is a Module where a T5Attention is expected: this sublayer cannot be replaced or wrapped (adapters wrap layers that map one tensor to another)")
        }
    }
}
