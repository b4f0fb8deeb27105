import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The run-based grouped low-rank kernel against its gather/scatter oracle, on one and two threads, and its
/// gradients by finite differences.
final class LowRankDeltaTests: XCTestCase {
    /// Groupings: one group; every row alternating; short runs of mixed lengths; a group with two separate runs;
    /// long runs (40 rows) of four groups, one of them in two runs (enough runs and groups for two threads).
    let groupings: [(rows: [Int], count: Int)] = [
        ([0, 0, 0, 0, 0, 0, 0, 0], 1),
        ([0, 1, 0, 1, 2, 0, 1, 2], 3),
        ([0, 0, 0, 1, 1, 2, 2, 2], 3),
        ([1, 1, 0, 0, 0, 1, 2, 2], 3),
        ([0, 1, 2, 3, 0].flatMap { [Int](repeating: $0, count: 8) }, 4),
    ]

    func testRowRuns() {
        let r = RowRuns(rowGroups: [1, 1, 0, 0, 0, 1, 2, 2], groupCount: 4)
        XCTAssertEqual(r.runs.map { [$0.group, $0.start, $0.count] }, [[1, 0, 2], [0, 2, 3], [1, 5, 1], [2, 6, 2]])
        XCTAssertEqual(r.byGroup.map { $0.map(\.start) }, [[2], [0, 5], [6]])   // group 3 has no rows: left out
    }

    /// The groupings above exercise both kernels: per-run products (0, 4: long runs) and per-row loops (1-3); below
    /// rank `rowwiseRankLimit` the forward always runs per row.
    func testBothKernelsAreCovered() {
        let rowwise = groupings.map { LowRankDelta.prefersRowwise(runs: RowRuns(rowGroups: $0.rows, groupCount: $0.count).runs.count, rows: $0.rows.count) }
        XCTAssertEqual(rowwise, [false, true, true, true, false])
        XCTAssertEqual(RowRuns.count([1, 1, 0, 0, 0, 1, 2, 2]), 4)
        XCTAssertEqual(RowRuns.count([]), 0)
        XCTAssertTrue(shapes.contains { $0.rank < LowRankDelta.rowwiseRankLimit })
        XCTAssertTrue(shapes.contains { $0.rank >= LowRankDelta.rowwiseRankLimit })
    }

    /// (in, rank, out): below and above the rank limit, with widths off and on the 8-lane vectors.
    let shapes: [(inF: Int, rank: Int, outF: Int)] = [(5, 3, 4), (19, 2, 17), (16, 1, 24), (9, 8, 12), (5, 9, 4)]

    func testForwardMatchesReferenceOnOneAndTwoThreads() throws {
        for (gi, (rows, count)) in groupings.enumerated() { for shared in [false, true] { for threads in [1, 2] {
            for (inF, rank, outF) in shapes {
                let x = randomTensor([rows.count, inF], seed: 1)
                let left = randomTensor([shared ? 1 : count, inF, rank], seed: 2), right = randomTensor([count, rank, outF], seed: 3)
                let y = try Parallel.$threadLimit.withValue(threads) {
                    try LowRankDelta.apply(Variable(x), left: Variable(left), right: Variable(right), rowGroups: rows,
                                           groupCount: count, scale: 0.5).value
                }
                let want = try LowRankDelta.reference(x, left: left, right: right, rowGroups: rows, groupCount: count, scale: 0.5)
                assertClose(y, want, rtol: 1e-5, atol: 1e-6, "grouping \(gi) shared \(shared) threads \(threads) \(inF) \(rank) \(outF)")
            }
        } } }
    }

    /// Enough per-row work to split the rows between two threads (rows * rank * (in + out) above the threshold).
    func testRowwiseForwardSplitAmongThreads() throws {
        let (m, inF, rank, outF, groups) = (1027, 96, 4, 97, 5)
        XCTAssertGreaterThanOrEqual(m * rank * (inF + outF), Gemm.parallelThreshold)
        let rows = (0..<m).map { ($0 * 7) % groups }
        let x = randomTensor([m, inF], seed: 11), left = randomTensor([groups, inF, rank], seed: 12)
        let right = randomTensor([groups, rank, outF], seed: 13)
        let want = try LowRankDelta.reference(x, left: left, right: right, rowGroups: rows, groupCount: groups, scale: 0.25)
        for threads in [1, 2] {
            let y = try Parallel.$threadLimit.withValue(threads) {
                try LowRankDelta.apply(Variable(x), left: Variable(left), right: Variable(right), rowGroups: rows,
                                       groupCount: groups, scale: 0.25).value
            }
            assertClose(y, want, rtol: 1e-4, atol: 1e-5, "threads \(threads)")
        }
    }

    func testGradientsByFiniteDifferences() throws {
        // Rank 3 runs the forward per row, rank 8 (long runs) as products; backwards follow the runs either way.
        for (rows, count) in groupings { for shared in [false, true] { for threads in [1, 2] { for rank in [3, 8] {
            let x = randomTensor([rows.count, 5], seed: 4)
            let left = randomTensor([shared ? 1 : count, 5, rank], seed: 5), right = randomTensor([count, rank, 4], seed: 6)
            try Parallel.$threadLimit.withValue(threads) {
                try gradCheck([x, left, right]) { v in
                    try LowRankDelta.apply(v[0], left: v[1], right: v[2], rowGroups: rows, groupCount: count, scale: 0.5)
                }
            }
        } } } }
    }

    /// A non-contiguous input (a transposed view) gives the same result as its contiguous copy.
    func testNonContiguousInput() throws {
        let x = randomTensor([8, 5], seed: 7), left = randomTensor([3, 5, 2], seed: 8), right = randomTensor([3, 2, 4], seed: 9)
        let rows = groupings[1].rows
        let a = try LowRankDelta.apply(Variable(nonContiguous(x)), left: Variable(left), right: Variable(right),
                                       rowGroups: rows, groupCount: 3, scale: 1).value
        assertClose(a, try LowRankDelta.reference(x, left: left, right: right, rowGroups: rows, groupCount: 3, scale: 1))
    }

    /// Fused with a base layer, the update is `x W^T + b + delta`: the packed kernel (40 rows, more than 16 outputs)
    /// and the direct one (8 rows), with and without a bias, on one and two threads.
    func testFusedWithBaseMatchesBasePlusDelta() throws {
        for (gi, (rows, count)) in groupings.enumerated() { for shared in [false, true] { for threads in [1, 2] {
            for (inF, rank, outF) in shapes + [(20, 8, 33)] { for withBias in [false, true] {
                let x = randomTensor([rows.count, inF], seed: 1)
                let left = randomTensor([shared ? 1 : count, inF, rank], seed: 2), right = randomTensor([count, rank, outF], seed: 3)
                let w = randomTensor([outF, inF], seed: 4), b = withBias ? randomTensor([outF], seed: 5) : nil
                let y = try Parallel.$threadLimit.withValue(threads) {
                    try LowRankDelta.apply(Variable(x), left: Variable(left), right: Variable(right), rowGroups: rows,
                                           groupCount: count, scale: 0.5, base: .init(weight: Variable(w), bias: b.map { Variable($0) })).value
                }
                var want = try x.matmul(w.T) + (try LowRankDelta.reference(x, left: left, right: right, rowGroups: rows,
                                                                            groupCount: count, scale: 0.5))
                if let b { want = try want + b }
                assertClose(y, want, rtol: 1e-4, atol: 1e-5, "grouping \(gi) shared \(shared) threads \(threads) \(inF) \(rank) \(outF) bias \(withBias)")
            } }
        } } }
    }

    /// Gradients of the fused form for every input (x, both factors, the base weight and bias), per row and per
    /// run, through the packed kernel (40 rows x 20 -> 33) and the direct one.
    func testFusedGradientsByFiniteDifferences() throws {
        for (gi, (rows, count)) in groupings.enumerated() where gi != 2 { for shared in [false, true] { for rank in [3, 8] {
            let (inF, outF) = rows.count > 8 ? (20, 33) : (5, 4)
            let x = randomTensor([rows.count, inF], seed: 4)
            let left = randomTensor([shared ? 1 : count, inF, rank], seed: 5), right = randomTensor([count, rank, outF], seed: 6)
            let w = randomTensor([outF, inF], seed: 7), b = randomTensor([outF], seed: 8)
            try Parallel.$threadLimit.withValue(gi == 4 ? 2 : 1) {
                try gradCheck([x, left, right, w, b]) { v in
                    try LowRankDelta.apply(v[0], left: v[1], right: v[2], rowGroups: rows, groupCount: count, scale: 0.5,
                                           base: .init(weight: v[3], bias: v[4]))
                }
            }
        } } }
    }

    /// The public wrapper checks what it is given and names the problem.
    func testLowRankUpdateRejectsMismatches() throws {
        let left = Variable(randomTensor([2, 5, 3], seed: 1)), right = Variable(randomTensor([2, 3, 4], seed: 2))
        XCTAssertThrowsError(try LowRankUpdate(left: left, right: Variable(randomTensor([2, 2, 4], seed: 3)), rowGroups: [0, 1],
                                               groupCount: 2, scale: 1)) { XCTAssertTrue("\($0)".contains("do not fit")) }
        XCTAssertThrowsError(try LowRankUpdate(left: left, right: right, rowGroups: [0, 2], groupCount: 2, scale: 1)) {
            XCTAssertTrue("\($0)".contains("row group 2 is not in 0..<2"))
        }
        let u = try LowRankUpdate(left: left, right: right, rowGroups: [0, 1, 1], groupCount: 2, scale: 1)
        XCTAssertThrowsError(try u.delta(for: Variable(randomTensor([2, 5], seed: 4)))) { XCTAssertTrue("\($0)".contains("3 row groups")) }
        XCTAssertThrowsError(try u.delta(for: Variable(randomTensor([3, 6], seed: 4)))) { XCTAssertTrue("\($0)".contains("does not end in 5")) }
        var g = Xoshiro256(seed: 1)
        XCTAssertThrowsError(try u.applied(to: Linear(6, 4, using: &g), Variable(randomTensor([3, 5], seed: 4)), .inference())) {
            XCTAssertTrue("\($0)".contains("weight [4, 6] does not fit"), "\($0)")
        }
        XCTAssertEqual(try u.delta(for: Variable(randomTensor([3, 1, 5], seed: 4))).shape, [3, 1, 4])
    }
}
