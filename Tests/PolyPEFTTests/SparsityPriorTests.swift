import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class SparsityPriorTests: XCTestCase {
    func testDigamma() {
        XCTAssertEqual(SparsityPrior.digamma(1), -0.5772156649015329, accuracy: 1e-10)
        XCTAssertEqual(SparsityPrior.digamma(0.5), -1.9635100260214235, accuracy: 1e-10)
        XCTAssertEqual(SparsityPrior.digamma(10), 2.251752589066721, accuracy: 1e-10)
    }

    func testValueMatchesTheBetaBernoulliMarginal() throws {
        // Hard 0/1 allocation, one split: T = 3, K = 2, column counts m = [3, 1], a = alpha / K = 0.25.
        let z = Tensor([1, 0, 1, 1, 1, 0], shape: [3, 1, 2])
        let v = try SparsityPrior.negativeLogPrior(Variable(z), alpha: 0.5).value.scalarValue
        func logp(_ m: Double) -> Double { log(0.25) + lgamma(m + 0.25) + lgamma(3 - m + 1) - lgamma(3 + 1 + 0.25) }
        XCTAssertEqual(Double(v), -(logp(3) + logp(1)), accuracy: 1e-5)
        // A small alpha prefers columns shared by all tasks or by none over half-used ones.
        let shared = Tensor([1, 0, 1, 0, 1, 0, 1, 0], shape: [4, 1, 2])
        let scattered = Tensor([1, 0, 0, 1, 1, 0, 0, 1], shape: [4, 1, 2])
        XCTAssertLessThan(try SparsityPrior.negativeLogPrior(Variable(shared), alpha: 0.5).value.scalarValue,
                          try SparsityPrior.negativeLogPrior(Variable(scattered), alpha: 0.5).value.scalarValue)
        XCTAssertThrowsError(try SparsityPrior.negativeLogPrior(Variable(z), alpha: 0)) {
            XCTAssertEqual("\($0)", "sparsity prior: alpha must be positive, got 0.0")
        }
    }

    func testGradientByFiniteDifferences() throws {
        let logits = randomTensor([4, 2, 3], seed: 3, low: -2, high: 2)
        try gradCheck([logits]) { v in try SparsityPrior.negativeLogPrior(v[0].sigmoid(), alpha: 1.5) }
    }

    func testModelLossReachesEveryRouterWithWeight() throws {
        let peft = try routingTestModel(routing: RoutingOptions(sharedSkill: true))
        let params = peft.polyLayers.map { $0.layer.router.moduleLogits }
        try paramGradCheck(params) { try peft.sparsityPriorLoss(alpha: 1, weight: 0.3, Context()) }
        peft.model.zeroGrad()
        try peft.sparsityPriorLoss(alpha: 1, weight: 0.3, Context()).backward()
        // The shared skill (last of each split) is always on: its logits get no gradient from the prior.
        let g = params[0].grad!
        for t in 0..<3 { XCTAssertEqual(g[t, 2], 0); XCTAssertEqual(g[t, 5], 0); XCTAssertNotEqual(g[t, 0], 0) }
    }
}
