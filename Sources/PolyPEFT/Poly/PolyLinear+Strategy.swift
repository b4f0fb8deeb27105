/// Which routing kernel `RoutingStrategy.automatic` picks, from the average number of rows per group.
///
/// ```
/// per group (LowRankDelta):  mix factors once per group, then two skinny products per run of rows
///                            -> G K r (in + out) + M r (in + out) flops, two small matmuls per run
/// per row (RoutedLowRank):   six matmuls over all rows with K r-wide intermediates
///                            -> M K r (in + out) flops, independent of G
/// parameters mixing: per row when  M < 8 G      outputs mixing: per row when  M < 32 G      (G = groups, M = rows)
/// ```
/// Per row does K times the flops of a long run, but a run of a few rows makes its two products inefficient, so
/// the crossover is measured (1 thread, BENCHMARKS.md "Routing kernel choice"): a 1024 x 1024 layer with r 8 and 8
/// skills trains in 185 against 470 ms per step per row with 2048 one-token samples, while 256 samples of 8 tokens
/// are even (189 against 182 ms); the `polyctl train` MLP trains per row at 970 against 730 steps/s. Output
/// mixing's per-group factors are K times wider (`[G, K r, out]`), which moves its crossover up.
extension PolyLinear {
    static func prefersPerRowRouting(rows: Int, groups: Int, mixing: MixingMode) -> Bool {
        guard groups > 1 else { return false }
        switch mixing {
        case .outputs: return rows < 32 * groups
        case .parameters: return rows < 8 * groups
        }
    }
}
