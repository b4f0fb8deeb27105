import PolyPEFTCore

// Every rule that picks a low-rank kernel, in one place (the matmul's rules are in the core's `GemmSelection.swift`).
// Each rule picks among kernels that compute the same result; the tests run every kernel, and the thresholds were
// fitted to measurements (BENCHMARKS.md, "Routing kernel choice" and "Low-rank kernels").

extension LowRankDelta {
    /// Short runs (on average under 8 rows, e.g. a batch of single samples of interleaved tasks, or training where
    /// every sample is its own group) go through the per-row loops of `RowwiseLowRank`: a product per run would
    /// cost more in calls than in arithmetic.
    static func prefersRowwise(runs: Int, rows: Int) -> Bool { runs * 8 > rows }

    /// Below this rank `H = x left` always uses the per-row loops: products with 1-7 columns waste most of a SIMD
    /// tile.
    static let rowwiseRankLimit = 8
}

extension RoutedPolyLinear {
    /// Which routing kernel `RoutingStrategy.automatic` picks, from the average number of rows per group:
    ///
    /// ```
    /// per group (LowRankDelta):  mix factors once per group, then a skinny product per run of rows and the row tail
    ///                            -> G K r (in + out) + M r (in + out) flops, one small matmul per run
    /// per row (RoutedLowRank):   six matmuls over all rows with K r-wide intermediates
    ///                            -> M K r (in + out) flops, independent of G
    /// parameters mixing: per row when  M < 8 G,   outputs mixing: when  M < 32 G      (G = groups, M = rows)
    /// and per row whenever the whole per-row work is small:  M K r (in + out) <= 2^21 flops
    /// ```
    /// Per row does K times the flops of a long run, but a run of a few rows makes its two products inefficient, so
    /// the crossover is measured; on small layers the fixed cost of mixing per group (with recorded ops) dominates.
    /// Output mixing's per-group factors are K times wider (`[G, K r, out]`), which moves its crossover up.
    /// Evaluation without gradients and with parameter mixing does not ask this rule: `RoutedPolyLinear.update` mixes
    /// constant factors per task with plain loops (`SkillMixing`).
    static func prefersPerRowRouting(rows: Int, groups: Int, inFeatures: Int, outFeatures: Int, r: Int, skills: Int,
                                     mixing: MixingMode) -> Bool {
        guard groups > 1 else { return false }
        if rows * skills * r * (inFeatures + outFeatures) <= 1 << 21 { return true }
        switch mixing {
        case .outputs: return rows < 32 * groups
        case .parameters: return rows < 8 * groups
        }
    }
}
