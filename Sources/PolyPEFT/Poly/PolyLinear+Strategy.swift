/// Which routing kernel `RoutingStrategy.automatic` picks, from the sizes of what each would build.
///
/// ```
/// per group (LowRankDelta): mixes factors once per group   -> G (in + out) R floats, then M (in + out) R work
/// per row (RoutedLowRank):  wide products per split, weighted per row -> M K (S r + out) floats over the S splits
/// parameters mixing: per row when  G (in + out) r  >  M K (S r + out)     (G = groups, M = rows)
/// outputs mixing:    per row when  M < 32 G     (the factors are K times wider: [G, K r, out])
/// ```
/// Measured on 2 cores (BENCHMARKS.md, "Routing kernel choice"): a 1024 x 1024 layer with r 8 and 8 skills trains
/// faster per row only when every group holds about one row (2048 single-token samples: 404 against 470 ms per
/// step; 256 samples of 8 tokens: 401 against 182 ms, so per group); the default `polyctl train` MLP trains faster
/// per group with parameter mixing (629 against 485 steps/s) and per row with output mixing (971 against 223);
/// with 64 splits per group wins (280 against 621 ms per step).
extension PolyLinear {
    static func prefersPerRowRouting(rows: Int, groups: Int, inFeatures: Int, outFeatures: Int, r: Int,
                                     skills: Int, splits: Int, mixing: MixingMode) -> Bool {
        guard groups > 1 else { return false }
        switch mixing {
        case .outputs:
            return rows < 32 * groups
        case .parameters:
            return groups * (inFeatures + outFeatures) * r > rows * skills * (r * splits + outFeatures)
        }
    }
}
