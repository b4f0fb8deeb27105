import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Optimal assignment (the Hungarian / Kuhn-Munkres algorithm with potentials), O(n^2 m) for an n x m matrix.
///
/// Given a cost matrix `c` with n rows and m columns, finds distinct columns `col(i)` minimising
///
/// ```
/// sum_i c[i][col(i)]         (every row assigned when n <= m; otherwise every column, and n - m rows get nil)
/// ```
///
/// Rectangular matrices are supported: with more rows than columns the transpose is solved.
/// Used to match learned skills to true skills, which are unordered.
public enum Assignment {
    /// For each row, the column assigned to it under a minimum-cost assignment (nil for rows left over when there
    /// are more rows than columns). Ties are broken deterministically. All rows must have the same length and
    /// every cost must be finite (programmer errors otherwise).
    public static func minimumCost(_ cost: [[Double]]) -> [Int?] {
        let n = cost.count
        guard n > 0, let m = cost.first?.count, m > 0 else { return [Int?](repeating: nil, count: n) }
        precondition(cost.allSatisfy { $0.count == m }, "Assignment: ragged cost matrix")
        precondition(cost.allSatisfy { $0.allSatisfy(\.isFinite) }, "Assignment: non-finite cost")
        if n > m {
            // Solve the transpose (columns as rows), then invert the matching.
            let t = (0..<m).map { j in (0..<n).map { i in cost[i][j] } }
            var out = [Int?](repeating: nil, count: n)
            for (j, i) in solve(t).enumerated() { out[i] = j }
            return out
        }
        return solve(cost).map { Optional($0) }
    }

    /// For each row, its column under an assignment maximising the total `score`.
    public static func maximumScore(_ score: [[Double]]) -> [Int?] {
        minimumCost(score.map { $0.map { -$0 } })
    }

    /// The total cost of an assignment (nil entries contribute nothing).
    public static func totalCost(_ cost: [[Double]], _ assignment: [Int?]) -> Double {
        zip(cost, assignment).reduce(0) { acc, pair in acc + (pair.1.map { pair.0[$0] } ?? 0) }
    }

    /// Core solver for n <= m: returns the column of every row.
    ///
    /// Shortest augmenting paths with dual potentials `u` (rows) and `v` (columns), keeping reduced costs
    /// `c[i][j] - u[i] - v[j] >= 0` and zero on matched pairs. Rows are added one at a time; each addition grows a
    /// Dijkstra-like tree over columns (`minv` = best reduced cost reaching each column, `way` = predecessor column)
    /// until it reaches a free column, then flips the matching along the path. Index 0 is a virtual column/row.
    static func solve(_ c: [[Double]]) -> [Int] {
        let n = c.count, m = c[0].count
        var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: m + 1)
        var rowOfColumn = [Int](repeating: 0, count: m + 1)   // 1-based row matched to column j, 0 = free
        var way = [Int](repeating: 0, count: m + 1)
        for i in 1...n {
            rowOfColumn[0] = i
            var j0 = 0
            var minv = [Double](repeating: .infinity, count: m + 1)
            var used = [Bool](repeating: false, count: m + 1)
            repeat {
                used[j0] = true
                let i0 = rowOfColumn[j0]
                var delta = Double.infinity, j1 = 0
                for j in 1...m where !used[j] {
                    let reduced = c[i0 - 1][j - 1] - u[i0] - v[j]
                    if reduced < minv[j] { minv[j] = reduced; way[j] = j0 }
                    if minv[j] < delta { delta = minv[j]; j1 = j }
                }
                for j in 0...m {
                    if used[j] { u[rowOfColumn[j]] += delta; v[j] -= delta } else { minv[j] -= delta }
                }
                j0 = j1
            } while rowOfColumn[j0] != 0
            // Flip the matching along the augmenting path back to the virtual column.
            repeat {
                let j1 = way[j0]
                rowOfColumn[j0] = rowOfColumn[j1]
                j0 = j1
            } while j0 != 0
        }
        var colOfRow = [Int](repeating: -1, count: n)
        for j in 1...m where rowOfColumn[j] != 0 { colOfRow[rowOfColumn[j] - 1] = j - 1 }
        return colOfRow
    }
}
