import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Finite-difference checks of every differentiable operation (Float32, step 1e-2, rtol 1e-2, odd small shapes).
final class AutogradTests: XCTestCase {
    func testArithmeticWithBroadcasting() throws {
        let a = randomTensor([3, 1, 5], seed: 1), b = randomTensor([4, 1], seed: 2, low: 0.5, high: 1.5)
        try gradCheck([a, b]) { v in try v[0] + v[1] }
        try gradCheck([a, b]) { v in try v[0] - v[1] }
        try gradCheck([a, b]) { v in try v[0] * v[1] }
        try gradCheck([a, b]) { v in try v[0] / v[1] }
        try gradCheck([a]) { v in (2 - v[0] * 3 + 1) / 2 }
        try gradCheck([nonContiguous(randomTensor([3, 7], seed: 3))]) { v in -v[0] }
    }

    func testUnaryOps() throws {
        let x = randomTensor([3, 7], seed: 4, low: 0.2, high: 1.5)      // positive: log, sqrt, pow
        try gradCheck([x]) { v in v[0].exp() }
        try gradCheck([x]) { v in v[0].log() }
        try gradCheck([x]) { v in v[0].sqrt() }
        try gradCheck([x]) { v in v[0].pow(2.5) }
        try gradCheck([x]) { v in v[0].squared() }
        let y = randomTensor([2, 9], seed: 5, low: -2, high: 2)
        try gradCheck([y]) { v in v[0].tanh() }
        try gradCheck([y]) { v in v[0].sigmoid() }
        try gradCheck([y]) { v in v[0].gelu() }
        try gradCheck([y]) { v in v[0].gelu(approximation: .tanh) }
        // Kinks: keep every element away from 0 (relu, abs) and the clamp bounds.
        let z = Tensor([-1.5, -0.7, 0.4, 0.9, 1.3, -0.2, 0.6], shape: [7])
        try gradCheck([z]) { v in v[0].relu() }
        try gradCheck([z]) { v in v[0].abs() }
        try gradCheck([z]) { v in v[0].clamped(min: -1, max: 1) }
    }

    func testReductionsAndShapes() throws {
        let x = randomTensor([3, 4, 5], seed: 6)
        try gradCheck([x]) { v in try v[0].sum(axes: [1]) }
        try gradCheck([x]) { v in try v[0].sum(axes: [0, 2], keepDims: true) }
        try gradCheck([x]) { v in try v[0].mean(axes: [2]) }
        try gradCheck([x]) { v in try v[0].sum() }
        try gradCheck([x]) { v in try v[0].reshaped([12, 5]) }
        try gradCheck([x]) { v in try v[0].permuted([2, 0, 1]) }
        try gradCheck([x]) { v in try v[0].transposed(0, 2) }
        try gradCheck([x]) { v in try v[0].sliced(axis: 1, start: 1, end: -1, step: 2) }
        try gradCheck([x]) { v in try v[0].indexSelect(axis: 1, [3, 0, 3]) }
        try gradCheck([randomTensor([3, 1], seed: 7)]) { v in try v[0].expanded(to: [2, 3, 4]) }
        try gradCheck([randomTensor([3, 1], seed: 7)]) { v in try v[0].squeezed().unsqueezed(0) }
        try gradCheck([x, randomTensor([3, 2, 5], seed: 8)]) { v in try Variable.concatenate([v[0], v[1]], axis: 1) }
        try gradCheck([x]) { v in
            let parts = try v[0].split(sizes: [1, 3], axis: 1)
            return try parts[0] * parts[1]
        }
    }

    func testMatmulAndLinear() throws {
        try gradCheck([randomTensor([3, 5], seed: 9), randomTensor([5, 7], seed: 10)]) { v in try v[0].matmul(v[1]) }
        // Batched with a broadcast rank-2 operand, and a transposed view as input.
        try gradCheck([randomTensor([2, 3, 5], seed: 11), nonContiguous(randomTensor([5, 4], seed: 12))]) { v in try v[0].matmul(v[1]) }
        try gradCheck([randomTensor([2, 3, 5], seed: 13), randomTensor([7, 5], seed: 14), randomTensor([7], seed: 15)]) { v in
            try v[0].linear(weight: v[1], bias: v[2])
        }
        try gradCheck([randomTensor([4, 5], seed: 16), randomTensor([3, 5], seed: 17)]) { v in try v[0].linear(weight: v[1], bias: nil) }
    }

    func testSoftmaxNormsAndLosses() throws {
        let x = randomTensor([3, 7], seed: 18, low: -3, high: 3)
        try gradCheck([x]) { v in try v[0].softmax(axis: 1) }
        try gradCheck([x]) { v in try v[0].softmax(axis: 0) }
        try gradCheck([x]) { v in try v[0].logSoftmax(axis: 1) }
        let h = randomTensor([2, 3, 9], seed: 19, low: -2, high: 2)
        try gradCheck([h, randomTensor([9], seed: 20), randomTensor([9], seed: 21)]) { v in
            try v[0].layerNorm(weight: v[1], bias: v[2], eps: 1e-5)
        }
        try gradCheck([h]) { v in try v[0].layerNorm(weight: nil, bias: nil, eps: 1e-5) }
        try gradCheck([h, randomTensor([9], seed: 22)]) { v in try v[0].rmsNorm(weight: v[1], eps: 1e-6) }
        let target = randomTensor([3, 7], seed: 23)
        try gradCheck([x]) { v in try Loss.mse(v[0], target) }
        try gradCheck([x]) { v in try Loss.mse(v[0], target, reduction: .sum) }
        try gradCheck([x]) { v in try Loss.crossEntropy(v[0], targets: [2, -100, 6]) }
        try gradCheck([x]) { v in try Loss.crossEntropy(v[0], targets: [0, 1, 6], reduction: .sum) }
    }

    func testCrossEntropyValueAndErrors() throws {
        let logits = Tensor([1, 2, 3, 0, 0, 0], shape: [2, 3])
        let l = try Loss.crossEntropy(Variable(logits), targets: [2, -100])
        // -log softmax([1,2,3])[2] = log(e + e^2 + e^3) - 3
        XCTAssertEqual(l.value.scalarValue, 0.40760596, accuracy: 1e-6)
        XCTAssertThrowsError(try Loss.crossEntropy(Variable(logits), targets: [3, 0])) {
            XCTAssertEqual("\($0)", "cross_entropy: target 3 at position 0 out of range 0..<3")
        }
        // Every target ignored: the mean is 0 and the gradient zero; no rows at all: the same.
        for (shape, targets) in [([2, 3], [-100, -100]), ([0, 3], [])] {
            let x = Variable(Tensor.ones(shape), requiresGrad: true)
            let none = try Loss.crossEntropy(x, targets: targets)
            XCTAssertEqual(none.value.scalarValue, 0)
            try none.backward()
            XCTAssertEqual(x.grad?.shape, shape)
            XCTAssertTrue(x.grad!.scalars.allSatisfy { $0 == 0 })
        }
    }

    /// The gradient rows are split among threads above `Parallel.elementwiseThreshold`: 1 and 2 threads agree, and
    /// the gradient is softmax - onehot (scaled by 1 / counted rows), zero on ignored rows.
    func testCrossEntropyGradientSplitAmongThreads() throws {
        let (n, c) = (97, 701)
        let logits = randomTensor([n, c], seed: 31, low: -5, high: 5)
        let targets = (0..<n).map { $0 % 10 == 3 ? -100 : ($0 * 37) % c }
        func grad(_ threads: Int) throws -> Tensor {
            try Parallel.$threadLimit.withValue(threads) {
                let x = Variable(logits, requiresGrad: true)
                try Loss.crossEntropy(x, targets: targets).backward()
                return x.grad!
            }
        }
        let one = try grad(1), two = try grad(2)
        XCTAssertEqual(one.scalars, two.scalars)
        let p = try logits.softmax(axis: 1), counted = Float(targets.filter { $0 != -100 }.count)
        for i in [0, 3, 50, 96] { for j in [0, targets[i] < 0 ? 1 : targets[i], c - 1] {
            let want = targets[i] < 0 ? 0 : (p[i, j] - (j == targets[i] ? 1 : 0)) / counted
            XCTAssertEqual(one[i, j], want, accuracy: 1e-6, "row \(i) column \(j)")
        } }
    }

    func testDropoutIsSeededAndScaled() throws {
        let x = Tensor.ones([1000])
        var g1 = Xoshiro256(seed: 3), g2 = Xoshiro256(seed: 3)
        let a = try Variable(x).dropout(p: 0.25, using: &g1).value, b = try Variable(x).dropout(p: 0.25, using: &g2).value
        XCTAssertEqual(a, b)
        XCTAssertTrue(a.scalars.allSatisfy { $0 == 0 || Swift.abs($0 - 1 / 0.75) < 1e-6 })
        let kept = a.scalars.filter { $0 != 0 }.count
        XCTAssertEqual(Double(kept) / 1000, 0.75, accuracy: 0.05)
    }

    func testFrozenParametersGetNoGradientAndSkipWork() throws {
        var g = Xoshiro256(seed: 1)
        let layer = Linear(4, 3, using: &g)
        layer.weight.requiresGrad = false
        let ctx = Context()
        let x = Variable(randomTensor([2, 4], seed: 2))
        try layer(x, ctx).sum().backward()
        XCTAssertNil(layer.weight.grad)
        XCTAssertNotNil(layer.bias!.grad)
        // Nothing at all is recorded when no input requires gradients.
        layer.bias!.requiresGrad = false
        XCTAssertFalse(try layer(x, ctx).requiresGrad)
        XCTAssertThrowsError(try layer(x, ctx).sum().backward())
        // A non-recording context records nothing even for trainable parameters.
        layer.weight.requiresGrad = true
        XCTAssertFalse(try layer(x, Context.inference()).requiresGrad)
    }

    func testGradientsAccumulateAcrossUsesAndBackwardTwiceFails() throws {
        let p = Parameter(Tensor([1, 2], shape: [2]))
        let v = p.variable()
        let y = try (try v * v) + v                           // dy/dp = 2p + 1
        try y.sum().backward()
        XCTAssertEqual(p.grad?.scalars, [3, 5])
        let z = try (p.variable() * 2).sum()
        try z.backward()
        XCTAssertEqual(p.grad?.scalars, [5, 7])              // accumulated
        XCTAssertThrowsError(try z.backward()) {
            XCTAssertEqual("\($0)", "backward: this part of the graph was already differentiated; run the forward again")
        }
        XCTAssertThrowsError(try (p.variable() * 2).backward()) {
            XCTAssertEqual("\($0)", "backward: value of shape [2] is not a scalar; pass a seed")
        }
    }
}
