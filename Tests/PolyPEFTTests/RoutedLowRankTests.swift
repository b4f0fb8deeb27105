import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The per-row routing kernel and the fused router weights against plain loops and composed ops, on odd shapes.
final class RoutedLowRankTests: XCTestCase {
    func testForwardMatchesPlainLoopsOnOddShapes() throws {
        for mode in MixingMode.allCases {
            for (m, s, k, d, r, e, g) in [(1, 1, 1, 1, 1, 1, 1), (7, 1, 3, 9, 2, 33, 7), (9, 3, 2, 5, 3, 7, 4), (33, 2, 5, 8, 1, 9, 3)] {
                let x = randomTensor([m, s * d], seed: 1), a = randomTensor([s, k, d, r], seed: 2)
                let b = randomTensor([s, k, r, e], seed: 3), w = randomTensor([g, s, k], seed: 4, low: 0, high: 1)
                let groups = (0..<m).map { ($0 * 5 + 1) % g }
                for threads in [1, 2] {
                    let y = try Parallel.$threadLimit.withValue(threads) {
                        try RoutedLowRank.apply(Variable(x), a: Variable(a), b: Variable(b), weights: Variable(w),
                                                rowGroups: groups, mode: mode, scale: 0.5).value
                    }
                    assertClose(y, RoutedLowRank.reference(x, a, b, w, groups, mode, 0.5), rtol: 1e-5, atol: 1e-5, "\(mode) m=\(m) s=\(s) k=\(k) threads=\(threads)")
                }
            }
        }
    }

    func testGradientsByFiniteDifferences() throws {
        for mode in MixingMode.allCases {
            for (m, s, k, d, r, e, g) in [(5, 1, 3, 4, 2, 3, 5), (6, 2, 2, 3, 3, 2, 4)] {
                let x = randomTensor([m, s * d], seed: 11), a = randomTensor([s, k, d, r], seed: 12)
                let b = randomTensor([s, k, r, e], seed: 13), w = randomTensor([g, s, k], seed: 14, low: 0.1, high: 1)
                let groups = (0..<m).map { ($0 * 3) % g }
                try gradCheck([x, a, b, w]) { v in
                    try RoutedLowRank.apply(v[0], a: v[1], b: v[2], weights: v[3], rowGroups: groups, mode: mode, scale: 0.7)
                }
            }
        }
    }

    func testShapeErrorsAreThrown() {
        let x = Variable(randomTensor([3, 4], seed: 1)), a = Variable(randomTensor([1, 2, 4, 2], seed: 2))
        let b = Variable(randomTensor([1, 2, 2, 5], seed: 3)), w = Variable(randomTensor([2, 1, 2], seed: 4))
        XCTAssertThrowsError(try RoutedLowRank.apply(x, a: a, b: b, weights: w, rowGroups: [0, 1, 2], mode: .parameters, scale: 1)) {
            XCTAssertTrue("\($0)".contains("routed_low_rank"), "\($0)")
        }
        XCTAssertThrowsError(try RoutedLowRank.apply(x, a: a, b: b, weights: w, rowGroups: [0, 1], mode: .outputs, scale: 1))
    }

    /// The fused router (`RoutingWeights`) equals the composed ops, values and gradients, in both modes.
    func testFusedRouterWeightsMatchComposedOps() throws {
        var rng = Xoshiro256(seed: 5)
        let router = PolyRouter(nTasks: 5, nSkills: 3, nSplits: 2, using: &rng)
        router.moduleLogits.value = randomTensor([5, 6], seed: 6, low: -3, high: 3)
        let rows = [4, 0, 4, 2, 1, 3, 0]
        let noise = randomTensor([rows.count, 2, 3], seed: 7, low: 0.02, high: 0.98)
        let cot = randomTensor([rows.count, 2, 3], seed: 8)
        for mode in [Context.Mode.eval, .train] {
            func run(fused: Bool) throws -> (Tensor, Tensor) {
                router.zeroGrad()
                let ctx = Context(mode: mode, taskIDs: nil)
                let u = mode == .train ? noise : nil
                let w = fused ? try RoutingWeights.compute(table: ctx[router.moduleLogits], rows: rows, splits: 2, skills: 3,
                                                           uniform: u, temperature: 1)
                              : try router.composedWeights(rows: rows, unknown: nil, uniform: u, ctx)
                try (try w * Variable(cot)).sum().backward()
                return (w.value, router.moduleLogits.grad!)
            }
            let (wf, gf) = try run(fused: true), (wc, gc) = try run(fused: false)
            assertClose(wf, wc, rtol: 1e-6, atol: 1e-7, "weights \(mode)")
            assertClose(gf, gc, rtol: 1e-4, atol: 1e-6, "gradient \(mode)")
        }
        XCTAssertThrowsError(try RoutingWeights.compute(table: Variable(router.moduleLogits.value), rows: [0, 5], splits: 2,
                                                        skills: 3, uniform: nil, temperature: 1)) {
            XCTAssertTrue("\($0)".contains("row 5 of group 1 is outside the logit table [5, 6]"), "\($0)")
        }
    }
}
