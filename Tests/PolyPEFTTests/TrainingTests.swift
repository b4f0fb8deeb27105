import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class TrainingTests: XCTestCase {
    /// A seeded MLP 3 -> 16 -> 1 and a toy regression target y = sin(x0) + x1 * x2.
    func makeProblem(seed: UInt64) -> (Sequential, Tensor, Tensor) {
        var g = Xoshiro256(seed: seed)
        let model = Sequential([Linear(3, 16, using: &g), Activation(.tanh), Linear(16, 1, using: &g)])
        let x = Tensor.uniform([64, 3], low: -1, high: 1, using: &g)
        let xs = x.scalars
        let y = Tensor((0..<64).map { i in Float(sin(Double(xs[3 * i]))) + xs[3 * i + 1] * xs[3 * i + 2] }, shape: [64, 1])
        return (model, x, y)
    }

    func train(_ model: Sequential, _ opt: any Optimizer, _ x: Tensor, _ y: Tensor, steps: Int,
               schedule: LRSchedule = .constant, from start: Int = 0) throws -> Float {
        var last: Float = 0
        for s in start..<(start + steps) {
            opt.zeroGrad()
            let loss = try Loss.mse(try model(Variable(x), Context(mode: .train)), y)
            try loss.backward()
            clipGradNorm(model.namedParameters().map(\.parameter), maxNorm: 10)
            opt.step(lrScale: schedule.multiplier(step: s))
            last = loss.value.scalarValue
        }
        return last
    }

    func testMLPLearnsToyRegression() throws {
        for makeOpt in [{ (p: [(name: String, parameter: Parameter)]) -> any Optimizer in Adam([ParameterGroup(parameters: p, learningRate: 1e-2)]) },
                        { p in Adam.adamW([ParameterGroup(parameters: p, learningRate: 1e-2, weightDecay: 0.01)]) },
                        { p in SGD([ParameterGroup(parameters: p, learningRate: 0.1)], momentum: 0.9) }] {
            let (model, x, y) = makeProblem(seed: 7)
            let opt = makeOpt(model.namedParameters())
            let initial = try Loss.mse(try model(Variable(x), Context.inference()), y).value.scalarValue
            let final = try train(model, opt, x, y, steps: 200, schedule: .cosine(warmupSteps: 10, totalSteps: 200))
            XCTAssertLessThan(final, initial * 0.5, "\(type(of: opt)) did not halve the loss: \(initial) -> \(final)")
        }
    }

    func testOptimizerResumeIsBitIdentical() throws {
        let (m1, x, y) = makeProblem(seed: 11)
        let o1 = Adam.adamW([ParameterGroup(name: "all", parameters: m1.namedParameters(), learningRate: 5e-3, weightDecay: 0.01)])
        _ = try train(m1, o1, x, y, steps: 40)

        // Interrupted run: 25 steps, save (parameters + optimizer state through JSON), restore into fresh objects.
        let (m2, _, _) = makeProblem(seed: 11)
        let o2 = Adam.adamW([ParameterGroup(name: "all", parameters: m2.namedParameters(), learningRate: 5e-3, weightDecay: 0.01)])
        _ = try train(m2, o2, x, y, steps: 25)
        let saved = try JSONEncoder().encode(o2.state())
        let weights = m2.namedParameters().map { $0.parameter.value }
        let (m3, _, _) = makeProblem(seed: 99)
        for (p, w) in zip(m3.namedParameters(), weights) { p.parameter.value = w }
        let o3 = Adam.adamW([ParameterGroup(name: "all", parameters: m3.namedParameters(), learningRate: 5e-3, weightDecay: 0.01)])
        try o3.load(try JSONDecoder().decode(OptimizerState.self, from: saved))
        _ = try train(m3, o3, x, y, steps: 15, from: 25)
        for (a, b) in zip(m1.namedParameters(), m3.namedParameters()) {
            XCTAssertEqual(a.parameter.value.scalars, b.parameter.value.scalars, a.name)
        }
        XCTAssertEqual(o3.stepCount, 40)
        // A state for other parameters is refused with a message naming the buffer.
        let other = Adam([ParameterGroup(name: "all", parameters: [("w", Parameter(Tensor.zeros([2])))], learningRate: 1)])
        XCTAssertThrowsError(try other.load(o1.state()))
        XCTAssertThrowsError(try SGD([]).load(o1.state())) { XCTAssertEqual("\($0)", "optimizer state is for adamw, not sgd") }
    }

    func testSchedules() {
        XCTAssertEqual(LRSchedule.constant.multiplier(step: 5), 1)
        let lin = LRSchedule.linear(warmupSteps: 4, totalSteps: 14)
        XCTAssertEqual((0..<4).map { lin.multiplier(step: $0) }, [0.25, 0.5, 0.75, 1])
        XCTAssertEqual(lin.multiplier(step: 9), 0.5, accuracy: 1e-6)
        XCTAssertEqual(lin.multiplier(step: 20), 0)
        let cos = LRSchedule.cosine(warmupSteps: 0, totalSteps: 10)
        XCTAssertEqual(cos.multiplier(step: 0), 1)
        XCTAssertEqual(cos.multiplier(step: 5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(cos.multiplier(step: 10), 0, accuracy: 1e-6)
    }

    func testClipGradNorm() {
        let a = Parameter(Tensor.zeros([2])), b = Parameter(Tensor.zeros([1]))
        a.grad = Tensor([3, 0], shape: [2])
        b.grad = Tensor([4], shape: [1])
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 1), 5)
        XCTAssertEqual(a.grad!.scalars[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(b.grad!.scalars[0], 0.8, accuracy: 1e-5)
    }

    /// Resident memory in bytes from /proc (Linux); nil elsewhere.
    func residentBytes() -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let parts = s.split(separator: " ")
        guard parts.count > 1, let pages = Int(parts[1]) else { return nil }
        return pages * 4096
    }

    /// What backward needs is released after use: 1,000 steps leave resident memory flat.
    func testMemoryStaysFlatOverThousandSteps() throws {
        let (model, x, y) = makeProblem(seed: 3)
        let opt = Adam([ParameterGroup(parameters: model.namedParameters(), learningRate: 1e-3)])
        _ = try train(model, opt, x, y, steps: 100)
        guard let before = residentBytes() else { throw XCTSkip("no /proc/self/statm") }
        _ = try train(model, opt, x, y, steps: 1000)
        let after = residentBytes()!
        XCTAssertLessThan(after - before, 4 << 20, "resident memory grew by \(after - before) bytes over 1,000 steps")
    }
}

final class DivergenceTests: XCTestCase {
    /// A non-finite loss or gradient is refused before the update: parameters, optimizer and generator unchanged,
    /// and the error names the loss or the parameter.
    func testNonFiniteLossOrGradientIsRefusedBeforeTheUpdate() throws {
        let p = Parameter(Tensor([1, 2], shape: [2]))
        let optimizer = Adam.adamW([ParameterGroup(name: "adapter", parameters: [("w", p)], learningRate: 0.1)])
        var rng = Xoshiro256(seed: 1)
        let before = rng
        XCTAssertThrowsError(try optimizer.trainingStep(rng: &rng) { _ in
            try (p.variable() * Variable(Tensor([.nan, 1], shape: [2]))).sum()
        }) { XCTAssertEqual("\($0)", "the loss is nan") }
        // A vector output seeded with an infinity: the loss is not a scalar, the gradient is not finite.
        XCTAssertThrowsError(try optimizer.trainingStep(rng: &rng, seed: Tensor([0, .infinity], shape: [2])) { _ in
            p.variable() * 3
        }) { XCTAssertEqual("\($0)", "the gradient of 'adapter/w' holds inf at flat index 1") }
        XCTAssertEqual(p.value, Tensor([1, 2], shape: [2]))
        XCTAssertEqual(rng, before)
        XCTAssertEqual(optimizer.stepCount, 0)
        try optimizer.trainingStep(rng: &rng) { _ in try (p.variable() * p.variable()).sum() }
        XCTAssertEqual(optimizer.stepCount, 1)
        XCTAssertNotEqual(p.value, Tensor([1, 2], shape: [2]))
    }
}
