import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Arrow over `E` LoRA experts in one linear layer (PEFT's `ArrowLoraLinearLayer`), zero-shot: no parameter trains.
/// For each token `x` (a row of the input `[..., in]`):
///
/// ```
/// v_e = top right singular vector of B_e A_e                 [in]   (prototypes, sign-free)
/// s_e = |x . v_e|                                            [E]
/// c   = softmax over the top_k experts of s / temperature    [E]    (0 for the others)
/// y   = base(x) + sum_e c_e scaling_e (x A_e^T) B_e^T
/// ```
/// Computed as two matmuls over the experts' factors stacked along the rank (`A` `[R, in]`, `B` `[out, R]`,
/// `R = sum r_e`): `H = x A^T` `[t, R]`, each rank column scaled by its expert's `c scaling`, then `H B^T`; no
/// `[tokens, experts, out]` tensor. The coefficients are constants of the input (not differentiated); each forward
/// records them as `arrow.<path>.coefficients` `[t, E]`.
///
/// The prototypes are found exactly (to float64 convergence) by power iteration in the rank space: with
/// `K = A A^T`, `C = B^T B`, the iteration `u <- C K u` has `v = A^T u` as the dominant eigenvector of
/// `(B A)^T (B A)`; PEFT runs 15 iterations in `in` space from a seeded random start, which is the same vector once
/// converged.
public final class ArrowLinear: Module, AdapterLayer, FeatureLayer {
    public let base: any Layer
    public let path: String
    public let experts: [String]
    public let config: ArrowConfig
    public let inFeatures: Int
    public let outFeatures: Int
    /// `[E, in]`.
    public let prototypes: Tensor
    let a: Tensor                       // [R, in]
    let b: Tensor                       // [out, R]
    let ranks: [Int]
    let scalings: [Float]

    /// `factors[e]` are expert `e`'s `A` `[r_e, in]` and `B` `[out, r_e]` (after GenKnowSub, if any).
    public init(wrapping layer: any Layer, path: String, experts: [String], factors: [AdapterLibrary.Factors], scalings: [Float],
                config: ArrowConfig) throws {
        guard let f = layer as? any FeatureLayer else {
            throw ConfigError("\(path): Arrow routes LoRA experts on Linear layers, not \(type(of: layer))")
        }
        guard !experts.isEmpty, experts.count == factors.count, experts.count == scalings.count else {
            throw ConfigError("\(path): Arrow needs one or more experts with factors and scalings")
        }
        guard config.topK <= experts.count else {
            throw ConfigError("\(path): top_k \(config.topK) is more than the \(experts.count) experts")
        }
        for (name, fe) in zip(experts, factors) where fe.a.shape.count != 2 || fe.a.shape[1] != f.inFeatures
            || fe.b.shape != [f.outFeatures, fe.a.shape[0]] {
            throw ConfigError("\(path): expert '\(name)' has A \(fmt(fe.a.shape)) and B \(fmt(fe.b.shape)); the layer is "
                + "\(f.inFeatures) -> \(f.outFeatures)")
        }
        base = f
        self.path = path
        self.experts = experts
        self.config = config
        inFeatures = f.inFeatures
        outFeatures = f.outFeatures
        ranks = factors.map { $0.a.shape[0] }
        self.scalings = scalings
        a = try Tensor.concatenate(factors.map(\.a), axis: 0).contiguous()
        b = try Tensor.concatenate(factors.map(\.b), axis: 1).contiguous()
        prototypes = Tensor(factors.flatMap { Self.topRightSingularVector(a: $0.a, b: $0.b, seed: config.rngSeed ?? 0) },
                            shape: [factors.count, f.inFeatures])
        super.init()
        addChild("base_layer", f)
    }

    /// The unit top right singular vector of `B A` (`A` `[r, in]`, `B` `[out, r]`), in float64 then rounded; the
    /// zero vector when `B A` is zero. The start of the iteration is drawn from `seed`.
    public static func topRightSingularVector(a: Tensor, b: Tensor, seed: Int) -> [Float] {
        let r = a.shape[0], n = a.shape[1], o = b.shape[0]
        let av = a.contiguous().scalars.map(Double.init), bv = b.contiguous().scalars.map(Double.init)
        var k = [Double](repeating: 0, count: r * r), c = [Double](repeating: 0, count: r * r)
        for i in 0..<r {
            for j in 0..<r {
                var s = 0.0, t = 0.0
                for x in 0..<n { s += av[i * n + x] * av[j * n + x] }
                for y in 0..<o { t += bv[y * r + i] * bv[y * r + j] }
                k[i * r + j] = s
                c[i * r + j] = t
            }
        }
        func apply(_ m: [Double], _ u: [Double]) -> [Double] {
            (0..<r).map { i in (0..<r).reduce(0.0) { $0 + m[i * r + $1] * u[$1] } }
        }
        func lift(_ u: [Double]) -> [Double] {                  // A^T u, [in]
            (0..<n).map { x in (0..<r).reduce(0.0) { $0 + av[$1 * n + x] * u[$1] } }
        }
        func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        var rng = Xoshiro256(seed: UInt64(truncatingIfNeeded: seed))
        var u = (0..<r).map { _ in Double.random(in: -1...1, using: &rng) }
        var v = lift(u)
        var scale = norm(v)
        guard scale > 0 else { return [Float](repeating: 0, count: n) }
        u = u.map { $0 / scale }
        for _ in 0..<100_000 {
            var next = apply(c, apply(k, u))
            let nv = lift(next)
            scale = norm(nv)
            guard scale > 0 else { return [Float](repeating: 0, count: n) }
            next = next.map { $0 / scale }
            let change = zip(next, u).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            u = next
            v = nv.map { $0 / scale }
            if change < 1e-15 { break }
        }
        return v.map(Float.init)
    }

    /// The routing coefficients `[t, E]` of tokens `x` `[t, in]`.
    public func coefficients(_ x: Tensor) throws -> Tensor {
        let e = experts.count, t = x.shape[0]
        let sim = try x.matmul(prototypes.transposed()).contiguous().scalars            // [t, E]
        let temperature = Float(config.routerTemperature)
        var out = [Float](repeating: 0, count: t * e)
        for row in 0..<t {
            let s = sim[(row * e)..<((row + 1) * e)].map { Swift.abs($0) }
            // top_k by value, ties to the lower index (a stable choice; PEFT's topk leaves ties unspecified)
            let chosen = s.indices.sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }.prefix(config.topK)
            let m = chosen.map { s[$0] / temperature }.max()!
            let w = chosen.map { Foundation.exp(s[$0] / temperature - m) }
            let z = w.reduce(0, +)
            for (i, idx) in chosen.enumerated() { out[row * e + idx] = w[i] / z }
        }
        return Tensor(out, shape: [t, e])
    }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let t = inFeatures > 0 ? x.value.count / inFeatures : 0
        let rows = try x.reshaped([t, inFeatures])                                        // [t, in]
        let c = try coefficients(rows.value)                                             // [t, E]
        ctx.recorder?.record("arrow.\(path).coefficients", c)
        let totalRank = a.shape[0], cs = c.scalars, e = experts.count
        var w = [Float](repeating: 0, count: t * totalRank)                              // [t, R]
        for row in 0..<t {
            var col = 0
            for j in 0..<e {
                let v = cs[row * e + j] * scalings[j]
                for _ in 0..<ranks[j] { w[row * totalRank + col] = v; col += 1 }
            }
        }
        let h = try rows.matmul(Variable(a.transposed())) * Variable(Tensor(w, shape: [t, totalRank]))   // [t, R]
        var shape = x.shape
        shape[shape.count - 1] = outFeatures
        return .dense(try h.matmul(Variable(b.transposed())).reshaped(shape))           // [..., out]
    }
}
