import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A learned router that reads the layer input: per split, a softmax over skills of a linear map of the input, for
/// each token or for each sequence (the mean of its tokens). It needs no task ids.
///
/// ```
/// x: [N, T, in] ([N, in]: T = 1)            weight W: [in, S*K]                       (parameter `weight`)
/// token:     h = x viewed [N*T, in]                       G = N*T, row i in group i
/// sequence:  h[n] = (1/T) sum_t x[n, t]    [N, in]         G = N,   row n*T + t in group n
/// z = h W viewed [G, S, K];    w[g, s, k] = exp(z[g,s,k]) / sum_k' exp(z[g,s,k'])         w: [G, S, K]
/// ```
/// Gradients reach `W` and the input. Wrapped by `RoutedPolyLinear` (`poly_router.weight`), its skills are mixed per
/// token or per sequence instead of per task.
public final class LinearRouter: Module, Router {
    /// Which rows share routing weights: each token on its own, or all tokens of a sequence (mean-pooled over every
    /// position, padding included: a router gets no attention mask).
    public enum Pooling: String, Sendable, CaseIterable {
        case token
        case sequence
    }

    public let inFeatures: Int
    public let nSplits: Int
    public let nSkills: Int
    public let pooling: Pooling
    public let weight: Parameter           // [in, S*K]

    /// `W` ~ U(-1/sqrt(in), 1/sqrt(in)) (the bound of PyTorch's `Linear` initialisation), drawn from `rng`.
    public init(inFeatures: Int, nSkills: Int, nSplits: Int, pooling: Pooling = .token,
                using rng: inout some RandomNumberGenerator) throws {
        guard inFeatures >= 1, nSkills >= 1, nSplits >= 1 else {
            throw ConfigError("linear router: in_features, n_skills and n_splits must be at least 1, got \(inFeatures), \(nSkills), \(nSplits)")
        }
        self.inFeatures = inFeatures
        self.nSplits = nSplits
        self.nSkills = nSkills
        self.pooling = pooling
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(Tensor.uniform([inFeatures, nSplits * nSkills], low: -bound, high: bound, using: &rng))
        super.init()
        addParameter("weight", weight)
    }

    public func route(_ x: Variable, _ ctx: Context, layer path: String) throws -> Routing {
        let (n, t) = try x.routedRows(layer: path)
        guard x.shape.last == inFeatures else {
            throw TensorError("routing", "\(path): input \(fmt(x.shape)) does not end in the router's \(inFeatures) features")
        }
        let h = pooling == .sequence && t > 1 ? try x.mean(axes: [1])                     // [N, in]
                                              : try x.reshaped([-1, inFeatures])          // [N*T, in] (= [N, in] if T = 1)
        let g = h.shape[0]
        let w = try h.matmul(ctx[weight]).reshaped([g, nSplits, nSkills]).softmax(axis: 2)  // [G, S, K]
        switch pooling {
        case .token: return try Routing(weights: w, rowGroups: Array(0..<g))
        case .sequence: return try Routing(weights: w, sampleGroups: Array(0..<n), tokens: t)
        }
    }
}
