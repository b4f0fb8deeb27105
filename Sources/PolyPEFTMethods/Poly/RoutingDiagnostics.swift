import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Diagnostics of a learned task x skill allocation, after Polytropon (Ponti et al., 2022) section 6.
///
/// Every function takes an allocation `w` as `[n_tasks][K]` non-negative routing weights: row i says how much task
/// i uses each skill (for Poly, `sigmoid(logits)` before the per-row normalisation). Two row normalisations appear:
///
/// ```
/// p_ik = w_ik / sum_k' w_ik'        (sum-normalised: what the Poly layer mixes with; uniform if the row is all 0)
/// q_ik = w_ik / max_k' w_ik'        (max-normalised: the strongest skill of each row is 1; 0 if the row is all 0)
/// ```
public enum RoutingDiagnostics {
    /// Sum-normalised rows `p` (a zero row becomes uniform).
    public static func sumNormalized(_ w: [[Float]]) -> [[Float]] {
        w.map { row in
            let s = row.reduce(0, +)
            return s > 0 ? row.map { $0 / s } : row.map { _ in 1 / Float(row.count) }
        }
    }

    /// Max-normalised rows `q` (a zero row stays zero).
    public static func maxNormalized(_ w: [[Float]]) -> [[Float]] {
        w.map { row in
            let m = row.max() ?? 0
            return m > 0 ? row.map { $0 / m } : row.map { _ in 0 }
        }
    }

    /// Fraction of cells whose max-normalised weight is below `threshold`: `mean_ik [q_ik < threshold]`.
    /// 0 when every task uses every skill about equally; `1 - 1/K` when each task uses exactly one skill.
    public static func sparsity(_ w: [[Float]], threshold: Float = 0.1) -> Float {
        let q = maxNormalized(w).flatMap { $0 }
        return q.isEmpty ? 0 : Float(q.filter { $0 < threshold }.count) / Float(q.count)
    }

    /// One minus the mean normalised row entropy:
    ///
    /// ```
    /// entropySparsity = 1 - (1/n) sum_i H(p_i) / log K,    H(p) = -sum_k p_k log p_k   (0 log 0 = 0)
    /// ```
    /// 0 for uniform rows, 1 for one-hot rows (defined as 0 when K = 1).
    public static func entropySparsity(_ w: [[Float]]) -> Float {
        guard let k = w.first?.count, k > 1 else { return 0 }
        let h = sumNormalized(w).map { entropy($0) / _logf(Float(k)) }
        return 1 - h.reduce(0, +) / Float(h.count)
    }

    /// How close routing probabilities are to 0 or 1: `mean_ik |2 w_ik - 1|` for `w` in [0, 1] (values are clamped).
    /// 1 when every probability is 0 or 1, 0 when every one is 0.5. Pass sigmoid probabilities, not `p`.
    public static func discreteness(_ w: [[Float]]) -> Float {
        let v = w.flatMap { $0 }
        guard !v.isEmpty else { return 0 }
        return v.reduce(0) { $0 + abs(2 * Swift.min(Swift.max($1, 0), 1) - 1) } / Float(v.count)
    }

    /// The share of total routing mass each skill receives: `u_k = (1/n) sum_i p_ik`, summing to 1.
    public static func skillUsage(_ w: [[Float]]) -> [Float] {
        guard let k = w.first?.count else { return [] }
        let p = sumNormalized(w)
        return (0..<k).map { j in p.reduce(0) { $0 + $1[j] } / Float(p.count) }
    }

    /// The number of skills effectively used: the perplexity of the usage, `exp(H(u))`, between 1 (one skill takes
    /// all the mass) and K (all skills used equally).
    public static func effectiveSkillCount(_ w: [[Float]]) -> Float {
        let u = skillUsage(w)
        return u.isEmpty ? 0 : _expf(entropy(u))
    }

    /// Cosine similarity of routing rows: `S_ij = <w_i, w_j> / (|w_i| |w_j|)` (0 when either row is zero).
    public static func taskSimilarity(_ w: [[Float]]) -> [[Float]] {
        let norms = w.map { $0.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        return w.indices.map { i in
            w.indices.map { j in
                let d = norms[i] * norms[j]
                return d > 0 ? zip(w[i], w[j]).reduce(0) { $0 + $1.0 * $1.1 } / d : 0
            }
        }
    }

    /// The `count` tasks most similar to `task` (itself excluded), by descending similarity, ties by lower index.
    public static func mostSimilarTasks(to task: Int, similarity s: [[Float]], count: Int) -> [(task: Int, similarity: Float)] {
        let others = s.indices.filter { $0 != task }.map { (task: $0, similarity: s[task][$0]) }
        let sorted = others.sorted { $0.similarity != $1.similarity ? $0.similarity > $1.similarity : $0.task < $1.task }
        return Array(sorted.prefix(Swift.max(count, 0)))
    }

    static func entropy(_ p: [Float]) -> Float {
        -p.reduce(0) { $1 > 0 ? $0 + $1 * _logf($1) : $0 }
    }
}

/// How well a learned allocation recovers a known 0/1 allocation (skills are unordered).
///
/// Procedure (`RoutingDiagnostics.recovery(learned:truth:)`):
/// ```
/// q   = max-normalised learned rows                          [n, K_learned]
/// pad q and the truth T with zero columns to width W = max(K_learned, K_true)
/// match: pi = argmin over bijections of sum_j sum_i (q[i][pi(j)] - T[i][j])^2   (Hungarian algorithm)
/// b[i][j] = q[i][pi(j)] >= 0.5 ? 1 : 0                       (learned, binarised, columns in true order)
/// cellAccuracy     = mean_ij [b_ij == T_ij]                  over all n x W cells
/// exactRowAccuracy = mean_i  [b_i == T_i]                    (every cell of the row right)
/// ```
/// An extra learned column that is active, or a true skill left without a learned column, counts as wrong cells.
public struct AllocationRecovery: Sendable, Equatable {
    /// For each true skill j, the learned column matched to it (nil when it was matched to a padding column).
    public let learnedColumnForSkill: [Int?]
    /// Max-normalised learned rows with columns reordered to the truth's order (width W; padding columns are 0).
    public let aligned: [[Float]]
    /// `aligned` thresholded at 0.5.
    public let binarized: [[Float]]
    /// Fraction of the n x W cells where `binarized` equals the (padded) truth.
    public let cellAccuracy: Float
    /// Fraction of tasks whose binarised row equals the truth exactly.
    public let exactRowAccuracy: Float
}

extension RoutingDiagnostics {
    /// Matches learned skills to true ones and scores the recovery (see `AllocationRecovery` for the definition).
    /// `learned` and `truth` must have the same number of rows (a programmer error otherwise).
    public static func recovery(learned: [[Float]], truth: [[Float]]) -> AllocationRecovery {
        precondition(learned.count == truth.count, "recovery: \(learned.count) learned rows but \(truth.count) true rows")
        let n = truth.count
        let kl = learned.first?.count ?? 0, kt = truth.first?.count ?? 0
        let width = Swift.max(kl, kt)
        let q = maxNormalized(learned).map { $0 + [Float](repeating: 0, count: width - kl) }
        let t = truth.map { $0 + [Float](repeating: 0, count: width - kt) }
        // cost[j][k]: squared distance between true column j and learned column k.
        let cost = (0..<width).map { j in
            (0..<width).map { k in (0..<n).reduce(0.0) { acc, i in let d = Double(q[i][k] - t[i][j]); return acc + d * d } }
        }
        let match = Assignment.minimumCost(cost).map { $0! }
        let aligned = q.map { row in match.map { row[$0] } }
        let binarized = aligned.map { $0.map { $0 >= 0.5 ? Float(1) : 0 } }
        var right = 0, exact = 0
        for i in 0..<n {
            let ok = (0..<width).filter { binarized[i][$0] == t[i][$0] }.count
            right += ok
            if ok == width { exact += 1 }
        }
        let cells = n * width
        return AllocationRecovery(
            learnedColumnForSkill: (0..<kt).map { match[$0] < kl ? match[$0] : nil },
            aligned: aligned, binarized: binarized,
            cellAccuracy: cells > 0 ? Float(right) / Float(cells) : 1,
            exactRowAccuracy: n > 0 ? Float(exact) / Float(n) : 1)
    }
}

/// All routing diagnostics of one allocation, for `polyctl inspect` and training summaries.
public struct RoutingSummary: Sendable, Equatable {
    public let sparsity: Float
    public let entropySparsity: Float
    public let discreteness: Float
    public let skillUsage: [Float]
    public let effectiveSkillCount: Float
    public let taskSimilarity: [[Float]]

    /// Computes every metric of `w` (`[n_tasks][K]` sigmoid probabilities); `threshold` is for `sparsity`.
    public init(_ w: [[Float]], threshold: Float = 0.1) {
        sparsity = RoutingDiagnostics.sparsity(w, threshold: threshold)
        entropySparsity = RoutingDiagnostics.entropySparsity(w)
        discreteness = RoutingDiagnostics.discreteness(w)
        skillUsage = RoutingDiagnostics.skillUsage(w)
        effectiveSkillCount = RoutingDiagnostics.effectiveSkillCount(w)
        taskSimilarity = RoutingDiagnostics.taskSimilarity(w)
    }
}
