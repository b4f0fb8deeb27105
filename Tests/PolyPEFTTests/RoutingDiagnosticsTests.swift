import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class RoutingDiagnosticsTests: XCTestCase {
    /// Exhaustive minimum over all injective maps of rows to columns (rows <= columns) or columns to rows.
    func bruteForce(_ c: [[Double]]) -> Double {
        let n = c.count, m = c[0].count
        if n > m { return bruteForce((0..<m).map { j in (0..<n).map { c[$0][j] } }) }
        var best = Double.infinity
        func go(_ i: Int, _ used: inout [Bool], _ acc: Double) {
            if i == n { best = min(best, acc); return }
            for j in 0..<m where !used[j] {
                used[j] = true
                go(i + 1, &used, acc + c[i][j])
                used[j] = false
            }
        }
        var used = [Bool](repeating: false, count: m)
        go(0, &used, 0)
        return best
    }

    func testHungarianMatchesBruteForceOnRandomMatrices() {
        var rng = Xoshiro256(seed: 42)
        for trial in 0..<300 {
            let n = 1 + Int(rng.next() % 6), m = 1 + Int(rng.next() % 6)
            // Integer costs give many ties; real costs exercise the general case.
            let integer = trial % 2 == 0
            let c = (0..<n).map { _ in (0..<m).map { _ in integer ? Double(rng.next() % 5) : Double(rng.nextUnitFloat()) * 10 - 3 } }
            let a = Assignment.minimumCost(c)
            XCTAssertEqual(a.count, n)
            let cols = a.compactMap { $0 }
            XCTAssertEqual(cols.count, min(n, m), "every row (or every column) is assigned")
            XCTAssertEqual(Set(cols).count, cols.count, "columns are distinct")
            XCTAssertEqual(Assignment.totalCost(c, a), bruteForce(c), accuracy: 1e-9, "trial \(trial): \(c)")
        }
    }

    func testHungarianKnownCaseAndMaximisation() {
        let c: [[Double]] = [[4, 1, 3], [2, 0, 5], [3, 2, 2]]
        XCTAssertEqual(Assignment.minimumCost(c), [1, 0, 2])
        XCTAssertEqual(Assignment.maximumScore([[1, 9], [8, 2]]), [1, 0])
        XCTAssertEqual(Assignment.minimumCost([[5], [1], [3]]), [nil, 0, nil])
        XCTAssertEqual(Assignment.minimumCost([]), [])
    }

    func testRecoveryIsPerfectOnPermutedTruth() throws {
        let s = try SyntheticTasks(SyntheticTasksTests.small())
        let truth = s.trueAllocation
        let perm = [3, 0, 5, 1, 4, 2]
        // Learned column perm[j] holds true skill j, with soft probabilities on both sides of 0.5.
        let learned = truth.map { row in (0..<6).map { k in row[perm.firstIndex(of: k)!] == 1 ? Float(0.9) : 0.2 } }
        let r = RoutingDiagnostics.recovery(learned: learned, truth: truth)
        XCTAssertEqual(r.learnedColumnForSkill, perm.map { Optional($0) })
        XCTAssertEqual(r.cellAccuracy, 1)
        XCTAssertEqual(r.exactRowAccuracy, 1)
        XCTAssertEqual(r.binarized, truth)
    }

    func testRecoveryCountsErrorsAndExtraColumns() {
        let truth: [[Float]] = [[1, 0], [0, 1], [1, 1]]
        // Learned has 3 columns: column 2 = skill 0, column 0 = skill 1, column 1 active in row 0 only.
        let learned: [[Float]] = [[0.1, 0.8, 0.9], [0.7, 0.0, 0.1], [0.6, 0.1, 0.6]]
        let r = RoutingDiagnostics.recovery(learned: learned, truth: truth)
        XCTAssertEqual(r.learnedColumnForSkill, [2, 0])
        XCTAssertEqual(r.binarized, [[1, 0, 1], [0, 1, 0], [1, 1, 0]])
        XCTAssertEqual(r.cellAccuracy, 8 / 9, accuracy: 1e-6)
        XCTAssertEqual(r.exactRowAccuracy, 2 / 3, accuracy: 1e-6)
        // Fewer learned columns than true skills: the unmatched skill's cells are predicted 0.
        let short = RoutingDiagnostics.recovery(learned: [[1], [0], [1]], truth: truth)
        XCTAssertEqual(short.learnedColumnForSkill, [0, nil])
        XCTAssertEqual(short.cellAccuracy, 4 / 6, accuracy: 1e-6)
        XCTAssertEqual(short.exactRowAccuracy, 1 / 3, accuracy: 1e-6)
    }

    func testMetricsOnKnownMatrices() {
        let oneHot: [[Float]] = [[1, 0, 0, 0], [0, 1, 0, 0]]
        let uniform: [[Float]] = [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]
        XCTAssertEqual(RoutingDiagnostics.sparsity(oneHot), 0.75)
        XCTAssertEqual(RoutingDiagnostics.sparsity(uniform), 0)
        XCTAssertEqual(RoutingDiagnostics.sparsity([[1, 0.05, 0.2]], threshold: 0.1), 1 / 3, accuracy: 1e-6)
        XCTAssertEqual(RoutingDiagnostics.entropySparsity(oneHot), 1, accuracy: 1e-6)
        XCTAssertEqual(RoutingDiagnostics.entropySparsity(uniform), 0, accuracy: 1e-6)
        XCTAssertEqual(RoutingDiagnostics.entropySparsity([[1, 1, 0, 0]]), 0.5, accuracy: 1e-6)
        XCTAssertEqual(RoutingDiagnostics.discreteness(oneHot), 1)
        XCTAssertEqual(RoutingDiagnostics.discreteness(uniform), 0)
        XCTAssertEqual(RoutingDiagnostics.discreteness([[0.75, 0.25]]), 0.5)
        XCTAssertEqual(RoutingDiagnostics.skillUsage(oneHot), [0.5, 0.5, 0, 0])
        XCTAssertEqual(RoutingDiagnostics.skillUsage([[2, 2], [0, 0]]), [0.5, 0.5])
        XCTAssertEqual(RoutingDiagnostics.effectiveSkillCount(oneHot), 2, accuracy: 1e-5)
        XCTAssertEqual(RoutingDiagnostics.effectiveSkillCount(uniform), 4, accuracy: 1e-5)
        let sim = RoutingDiagnostics.taskSimilarity([[1, 0], [1, 1], [0, 2], [0, 0]])
        XCTAssertEqual(sim[0][0], 1, accuracy: 1e-6)
        XCTAssertEqual(sim[0][1], 1 / Float(2).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(sim[0][2], 0)
        XCTAssertEqual(sim[3][3], 0)
        let top = RoutingDiagnostics.mostSimilarTasks(to: 1, similarity: sim, count: 2)
        XCTAssertEqual(top.map(\.task), [0, 2])
        let summary = RoutingSummary(oneHot)
        XCTAssertEqual(summary.sparsity, 0.75)
        XCTAssertEqual(summary.skillUsage, [0.5, 0.5, 0, 0])
    }
}
