import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Which routing kernel `RoutingStrategy.automatic` picks, from the average number of rows per group.
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
/// the crossover is measured (1 thread, BENCHMARKS.md "Routing kernel choice"): a 1024 x 1024 layer with r 8 and 8
/// skills trains in 185 against 470 ms per step per row with 2048 one-token samples, while 256 samples of 8 tokens
/// are even (171 against 174 ms) and 128 samples of 16 tokens favour per group (171 against 154). On small layers
/// the fixed cost of mixing per group (with recorded ops) dominates: the `polyctl train` MLP trains per row at 1,320
/// against 730 steps/s. Output mixing's per-group factors are K times wider (`[G, K r, out]`), which moves its
/// crossover up. Evaluation without gradients and with parameter mixing does not ask this rule: `PolyLinear.delta`
/// mixes constant factors per task with plain loops (`SkillMixing`), which took the same model's mixed-task
/// inference (18 tasks, 14 rows each) from 0.18 ms (per-row kernel) to 0.12 ms.
extension RoutedPolyLinear {
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
