import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Model-based clustering (MBC) of an adapter library, as microsoft/mttl computes it ("Towards Modular LLMs by
/// Building and Reusing a Library of LoRAs"; its `SVDEmbeddingTransform`, then k-means):
///
/// ```
/// v_i   = every lora_A and lora_B of adapter i, flattened        [D]  (modules sorted by path, A then B, row-major)
/// v_i[j] = 0 where |v_i[j]| <= quantile(|v_i|, sparsity)             (numpy's linear quantile, per adapter)
/// e_i   = row i of U_c S_c, the truncated SVD of [v_1; ...; v_N]  [c]  (c = min(components, N)), then e_i / |e_i|
/// sim   = e_i . e_j                                                   cosine similarity of the adapters
/// labels = k-means on the rows of sim (mttl's `MBCWithCosSimTransform`; k-means++ starts, several, the lowest
///          inertia kept)
/// ```
/// mttl's defaults: 64 components, sparsity 0.8. The SVD is exact (the eigenvectors of the `N x N` Gram matrix, by
/// Jacobi rotations in float64), where mttl uses scikit-learn's randomized one (exact too while components plus its
/// 10 oversamples reach N); signs of components are arbitrary, and the similarity does not depend on them. Unlike
/// mttl, a threshold that zeroes slightly more than the asked share (a quantile landing on a stored value) is not an
/// error.
public enum LibraryClustering {
    public struct Options: Equatable, Sendable {
        public var components = 64
        public var sparsity = 0.8
        public var clusters = 2
        /// k-means restarts (scikit-learn's `n_init`).
        public var restarts = 10
        public var seed: UInt64 = 0

        public init(components: Int = 64, sparsity: Double = 0.8, clusters: Int = 2, restarts: Int = 10, seed: UInt64 = 0) {
            self.components = components
            self.sparsity = sparsity
            self.clusters = clusters
            self.restarts = restarts
            self.seed = seed
        }
    }

    /// What clustering found: per adapter (in the order given) its threshold, embedding, cluster; the similarity;
    /// the k-means inertia (of the similarity rows).
    public struct Result {
        public let names: [String]
        public let thresholds: [Double]
        public let singularValues: [Double]
        /// `[N][c]`, unit rows.
        public let embeddings: [[Double]]
        /// `[N][N]`.
        public let similarity: [[Double]]
        public let labels: [Int]
        public let inertia: Double

        /// The adapters of each cluster, by label.
        public var clusters: [[String]] {
            let k = (labels.max() ?? -1) + 1
            return (0..<k).map { c in zip(names, labels).filter { $0.1 == c }.map(\.0) }
        }
    }

    /// Clusters the adapters `names` of `library` (all of them when nil).
    public static func cluster(_ library: AdapterLibrary, names: [String]? = nil, options: Options) throws -> Result {
        let names = names ?? library.names
        guard names.count >= 2 else { throw ConfigError("clustering needs at least 2 adapters, got \(names.count)") }
        guard (1...names.count).contains(options.clusters) else {
            throw ConfigError("clusters must be in 1...\(names.count) (the adapters), got \(options.clusters)")
        }
        guard options.components >= 1, options.restarts >= 1 else { throw ConfigError("components and restarts must be at least 1") }
        guard options.sparsity.isFinite, options.sparsity >= 0, options.sparsity < 1 else {
            throw ConfigError("sparsity must be in [0, 1), got \(options.sparsity)")
        }
        var rows: [[Double]] = []
        var thresholds: [Double] = []
        for name in names {
            let f = try library.factors(name)
            var v: [Double] = []
            for path in f.keys.sorted() { v += f[path]!.a.contiguous().scalars.map(Double.init) + f[path]!.b.contiguous().scalars.map(Double.init) }
            let t = quantile(v.map { Swift.abs($0) }, options.sparsity)
            thresholds.append(t)
            rows.append(v.map { Swift.abs($0) <= t ? 0 : $0 })
        }
        guard Set(rows.map(\.count)).count == 1 else { throw ConfigError("the adapters' ranks differ: clustering compares equal-sized adapters") }
        let (values, embeddings) = truncatedSVD(rows, components: options.components)
        let unit = embeddings.map { e -> [Double] in
            let n = e.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return n > 0 ? e.map { $0 / n } : e
        }
        let similarity = unit.map { a in unit.map { b in zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } } }
        let (labels, inertia) = kMeans(similarity, k: options.clusters, restarts: options.restarts, seed: options.seed)
        return Result(names: names, thresholds: thresholds, singularValues: values, embeddings: unit, similarity: similarity,
                      labels: labels, inertia: inertia)
    }

    /// numpy's `quantile(x, q)` (linear interpolation between the sorted values).
    public static func quantile(_ x: [Double], _ q: Double) -> Double {
        let s = x.sorted()
        guard !s.isEmpty else { return 0 }
        let pos = q * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, s.count - 1)
        return s[lo] + (pos - Double(lo)) * (s[hi] - s[lo])
    }

    /// The top `components` singular values of `rows` (`[N][D]`) and `U_c S_c` (`[N][c]`, `c = min(components, N)`),
    /// from the eigen decomposition of the Gram matrix `rows rows^T`.
    public static func truncatedSVD(_ rows: [[Double]], components: Int) -> (values: [Double], embeddings: [[Double]]) {
        let n = rows.count
        var g = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n { for j in i..<n { let d = zip(rows[i], rows[j]).reduce(0) { $0 + $1.0 * $1.1 }; g[i][j] = d; g[j][i] = d } }
        let (eigenvalues, vectors) = jacobiEigen(g)
        let order = eigenvalues.indices.sorted { eigenvalues[$0] > eigenvalues[$1] }.prefix(Swift.min(components, n))
        let values = order.map { Swift.max(eigenvalues[$0], 0).squareRoot() }
        // U S = the eigenvectors scaled by the singular values (columns of `vectors`).
        let embeddings = (0..<n).map { i in zip(order, values).map { (c, s) in vectors[i][c] * s } }
        return (values, embeddings)
    }

    /// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
    static func jacobiEigen(_ m: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        let n = m.count
        var a = m
        var v = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where i != j { off += a[i][j] * a[i][j] } }
            let scale = (0..<n).reduce(0.0) { $0 + a[$1][$1] * a[$1][$1] }
            if off <= 1e-30 * Swift.max(scale, 1e-300) { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p][q] != 0 {
                    let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (Swift.abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k][p], akq = a[k][q]
                        a[k][p] = c * akp - s * akq
                        a[k][q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p][k], aqk = a[q][k]
                        a[p][k] = c * apk - s * aqk
                        a[q][k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k][p], vkq = v[k][q]
                        v[k][p] = c * vkp - s * vkq
                        v[k][q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0][$0] }, v)
    }

    /// k-means with k-means++ starts, `restarts` times from a generator seeded with `seed`; the run with the lowest
    /// inertia (sum of squared distances to the centres). Labels are renumbered by first appearance.
    public static func kMeans(_ points: [[Double]], k: Int, restarts: Int, seed: UInt64, iterations: Int = 300) -> (labels: [Int], inertia: Double) {
        func d2(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        var rng = Xoshiro256(seed: seed)
        var best: (labels: [Int], inertia: Double) = ([], .infinity)
        for _ in 0..<restarts {
            var centres = [points[Int.random(in: 0..<points.count, using: &rng)]]
            while centres.count < k {
                let w = points.map { p in centres.map { d2(p, $0) }.min()! }
                let total = w.reduce(0, +)
                guard total > 0 else { centres.append(points[centres.count % points.count]); continue }
                var r = Double.random(in: 0..<total, using: &rng), pick = points.count - 1
                for (i, wi) in w.enumerated() { r -= wi; if r < 0 { pick = i; break } }
                centres.append(points[pick])
            }
            var labels = [Int](repeating: 0, count: points.count)
            for _ in 0..<iterations {
                let next = points.map { p in centres.indices.min { d2(p, centres[$0]) < d2(p, centres[$1]) }! }
                for c in 0..<k {
                    let members = points.indices.filter { next[$0] == c }
                    guard !members.isEmpty else { continue }
                    centres[c] = (0..<points[0].count).map { j in members.reduce(0) { $0 + points[$1][j] } / Double(members.count) }
                }
                if next == labels { break }
                labels = next
            }
            let inertia = points.indices.reduce(0) { $0 + d2(points[$1], centres[labels[$1]]) }
            if inertia < best.inertia - 1e-12 { best = (labels, inertia) }
        }
        var map: [Int: Int] = [:]
        let renumbered = best.labels.map { l in map[l] ?? { map[l] = map.count; return map[l]! }() }
        return (renumbered, best.inertia)
    }
}
