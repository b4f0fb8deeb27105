import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// A two-level tree with PyTorch-style names, for naming and replacement tests.
final class Block: Module, Layer {
    init(_ rng: inout Xoshiro256) {
        super.init()
        addChild("q", Linear(4, 4, bias: false, using: &rng))
        addChild("norm", LayerNorm(4))
    }
    func forward(_ x: Variable, _ ctx: Context) throws -> Variable { try layer("norm").forward(try layer("q").forward(x, ctx), ctx) }
}

final class ModuleTests: XCTestCase {
    func makeTree() -> Module {
        var g = Xoshiro256(seed: 1)
        let root = Module()
        let layers = Module()
        root.addChild("layer", layers)
        layers.addChild("0", Block(&g))
        layers.addChild("1", Block(&g))
        root.addChild("head", Linear(4, 2, using: &g))
        return root
    }

    func testNamedParametersFollowPyTorchNames() {
        let names = makeTree().namedParameters().map(\.name)
        XCTAssertEqual(names, ["layer.0.q.weight", "layer.0.norm.weight", "layer.0.norm.bias",
                               "layer.1.q.weight", "layer.1.norm.weight", "layer.1.norm.bias",
                               "head.weight", "head.bias"])
        XCTAssertEqual(makeTree().namedModules().map(\.path),
                       ["", "layer", "layer.0", "layer.0.q", "layer.0.norm", "layer.1", "layer.1.q", "layer.1.norm", "head"])
    }

    func testReplaceByPath() throws {
        let t = makeTree()
        var g = Xoshiro256(seed: 5)
        let replacement = Linear(4, 4, bias: true, using: &g)
        try t.replace(path: "layer.1.q", with: replacement)
        XCTAssertTrue(t.module(at: "layer.1.q") === replacement)
        XCTAssertTrue(t.namedParameters().map(\.name).contains("layer.1.q.bias"))
        XCTAssertThrowsError(try t.replace(path: "layer.7.q", with: replacement)) {
            XCTAssertEqual("\($0)", "replace: no module at 'layer.7.q'")
        }
        XCTAssertThrowsError(try t.replace(path: "head", with: Module())) {
            XCTAssertEqual("\($0)", "replace: 'head' is a layer and can only be replaced by a layer, not Module")
        }
    }

    func testFreezeAndSummary() {
        let t = makeTree()
        // 3 * (16 + 4 + 4) ... two blocks of 24 plus head 4*2+2 = 58
        XCTAssertEqual(t.parameterSummary(), "trainable params: 58 || all params: 58 || trainable%: 100.0000")
        t.freeze()
        t.setRequiresGrad(true) { $0.hasPrefix("head.") }
        XCTAssertEqual(t.trainableParameters().map(\.name), ["head.weight", "head.bias"])
        XCTAssertEqual(t.parameterSummary(), "trainable params: 10 || all params: 58 || trainable%: 17.2414")
        XCTAssertEqual(groupThousands(1_062_912), "1,062,912")
        XCTAssertEqual(formatFixed(1.15612, digits: 4), "1.1561")
    }

    func testLayerGradChecks() throws {
        var g = Xoshiro256(seed: 3)
        let block = Block(&g)
        let x = randomTensor([2, 3, 4], seed: 4)
        let ctx = Context()
        // Gradient with respect to the input through a real module.
        try gradCheck([x]) { v in try block(v[0], ctx) }
        let rms = RMSNorm(4)
        rms.weight.value = randomTensor([4], seed: 5)
        try gradCheck([x]) { v in try rms(v[0], ctx) }
        let emb = Embedding(5, 3, using: &g)
        let e = try emb.forward(ids: [4, 0, 4], shape: [3], ctx)
        try (try e * Variable(randomTensor([3, 3], seed: 6))).sum().backward()
        let grad = emb.weight.grad!
        XCTAssertEqual(try grad.indexSelect(axis: 0, [1, 2, 3]).scalars, [Float](repeating: 0, count: 9))
        XCTAssertThrowsError(try emb.forward(ids: [5], shape: [1], ctx))
    }

    func testDropoutLayerOnlyInTraining() throws {
        let d = Dropout(0.5)
        let x = Variable(Tensor.ones([64]))
        XCTAssertEqual(try d(x, Context(mode: .eval)).value, x.value)
        XCTAssertNotEqual(try d(x, Context(mode: .train)).value, x.value)
    }

    /// `uniqueObjects` keeps the first element of each object (by identity, not by value), in order.
    func testUniqueObjectsKeepsTheFirstOfEachObjectInOrder() {
        let p1 = Parameter(Tensor.zeros([2])), p2 = Parameter(Tensor.zeros([2])), p3 = Parameter(Tensor.zeros([2]))
        let named = [("a", p1), ("b", p2), ("c", p1), ("d", p3), ("e", p2)]
        XCTAssertEqual(named.uniqueObjects { $0.1 }.map(\.0), ["a", "b", "d"])
        XCTAssertEqual([(String, Parameter)]().uniqueObjects { $0.1 }.count, 0)
    }
}
