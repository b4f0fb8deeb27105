import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A parameterised hypercomplex multiplication layer (Compacter's projection; the adapters library's `PHMLayer`):
/// a `Linear` whose weight is a sum of Kronecker products of small rule matrices and per-layer blocks.
///
/// ```
/// n = phm_dim, R = in / n, S = out / n
/// rule: [n, n, n]    = phm_rule, or bmm(phm_rule_left [n, n, 1], phm_rule_right [n, 1, n]); shared by every PHM layer
///                      of the model (`PHMSharedRule`) when shared_phm_rule
/// W:    [n, R, S]    = W, or bmm(W_left [n, R, k], W_right [n, k, S]) (k = phm_rank; factorized_phm_W)
/// H:    [in, out]    H[p R + r, q S + s] = sum_i rule[i, p, q] W[i, r, s]     (sum_i kron(rule_i, W_i))
/// y = x H + b        x: [..., in], b: [out] (phm_bias)
/// ```
/// H is formed from the factors in every forward: one [n^2, n] x [n, R S] matmul and a permutation, so gradients
/// reach the factors through the autograd graph.
///
/// Initialisation as the adapters library 1.3.0 does it: each block of W (or of W_left and W_right) Xavier-normal
/// (the library's `init_W` takes the Xavier-normal branch for every `hypercomplex_nonlinearity`, since its first test
/// is the string's truth value), b zero, a per-layer rule N(0, 0.01^2) or U(-0.01, 0.01) (`phm_c_init`).
public final class PHMLayer: Module, Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let phmDim: Int
    let wFull: Parameter?
    let wLeft: Parameter?
    let wRight: Parameter?
    let bias: Parameter?
    let rule: PHMRule

    /// `position`: `.down` or `.up`, which of the model's shared W this layer reads under `shared_W_phm`.
    public init(inFeatures: Int, outFeatures: Int, config: BnConfig, sharedRule: PHMSharedRule?, position: PHMSharedRule.Position,
                name: String, using rng: inout some RandomNumberGenerator) throws {
        let n = config.phmDim
        guard n > 0 else { throw ConfigError("\(name): phm_dim must be at least 1, got \(n)") }
        for (what, size) in [("in_features", inFeatures), ("out_features", outFeatures)] where size % n != 0 {
            throw ConfigError("\(name): \(what) \(size) is not divisible by phm_dim \(n)")
        }
        let r = inFeatures / n, s = outFeatures / n
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        phmDim = n
        func blocks(_ rows: Int, _ cols: Int) -> Parameter { Self.xavierBlocks(n, rows, cols, using: &rng) }
        if config.sharedWPhm {
            guard let shared = sharedRule, let w = shared.w[position] else {
                throw ConfigError("\(name): shared_W_phm needs the model's shared W")
            }
            guard w.left.value.shape == [n, r, config.phmRank], w.right.value.shape == [n, config.phmRank, s] else {
                throw ConfigError("\(name): the shared W \(fmt(w.left.value.shape)) x \(fmt(w.right.value.shape)) does not fit a "
                    + "\(inFeatures) -> \(outFeatures) layer (shared_W_phm needs one bottleneck width in every layer)")
            }
            (wLeft, wRight, wFull) = (w.left, w.right, nil)
        } else if config.factorizedPhmW {
            wLeft = blocks(r, config.phmRank)
            wRight = blocks(config.phmRank, s)
            wFull = nil
        } else {
            wFull = blocks(r, s)
            wLeft = nil
            wRight = nil
        }
        bias = config.phmBias ? Parameter(Tensor.zeros([outFeatures])) : nil
        if config.sharedPhmRule {
            guard let shared = sharedRule?.rule else { throw ConfigError("\(name): shared_phm_rule needs the model's shared rule") }
            rule = shared
        } else {
            rule = PHMRule(config: config, range: 0.01, using: &rng)
        }
        super.init()
        if let w = wFull { addParameter("W", w) }
        if !config.sharedWPhm, let l = wLeft, let rt = wRight {
            addParameter("W_left", l)
            addParameter("W_right", rt)
        }
        if let b = bias { addParameter("b", b) }
        if !config.sharedPhmRule { for (key, p) in rule.parameters { addParameter(key, p) } }
    }

    /// `n` Xavier-normal blocks `[n, rows, cols]`: the library's `init_W` for W and its factors.
    static func xavierBlocks(_ n: Int, _ rows: Int, _ cols: Int, using rng: inout some RandomNumberGenerator) -> Parameter {
        Parameter(Tensor((0..<n).flatMap { _ in Tensor.xavierNormal(rows, cols, using: &rng).scalars }, shape: [n, rows, cols]))
    }

    /// H: [in, out] from the current factors.
    func weight(_ ctx: Context) throws -> Variable {
        let n = phmDim, r = inFeatures / n, s = outFeatures / n
        let w: Variable                                                      // [n, R, S]
        if let full = wFull { w = ctx[full] } else { w = try ctx[wLeft!].matmul(ctx[wRight!]) }
        let c = try rule.matrix(ctx)                                         // [n, n, n]
        let products = try c.reshaped([n, n * n]).transposed()               // [n^2, n]: rows (p, q)
            .matmul(try w.reshaped([n, r * s]))                              // [n^2, R S]: sum over i
        return try products.reshaped([n, n, r, s]).permuted([0, 2, 1, 3])    // [p, r, q, s]
            .reshaped([n * r, n * s])                                        // [in, out]
    }

    /// x: [..., in] -> [..., out]
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        let h = try weight(ctx)
        let lead = Array(x.shape.dropLast())
        var y = try x.reshaped([-1, inFeatures]).matmul(h)                   // [M, out]
        if let b = bias { y = try y + ctx[b] }
        return try y.reshaped(lead + [outFeatures])
    }
}

/// The PHM rule matrices `[n, n, n]`: one tensor (`phm_rule`) or the product of two factors (`phm_rule_left`
/// `[n, n, 1]`, `phm_rule_right` `[n, 1, n]`, `factorized_phm_rule`).
public struct PHMRule {
    /// By saved name.
    public let parameters: [(name: String, parameter: Parameter)]

    /// A rule initialised N(0, range^2) (`phm_c_init` normal) or U(-range, range) (uniform).
    init(config: BnConfig, range: Double, using rng: inout some RandomNumberGenerator) {
        let n = config.phmDim
        func draw(_ shape: [Int]) -> Parameter {
            let t = config.phmCInit == .normal ? Tensor.normal(shape, std: Float(range), using: &rng)
                : Tensor.uniform(shape, low: -Float(range), high: Float(range), using: &rng)
            return Parameter(t, requiresGrad: config.learnPhm)
        }
        parameters = config.factorizedPhmRule
            ? [("phm_rule_left", draw([n, n, 1])), ("phm_rule_right", draw([n, 1, n]))]
            : [("phm_rule", draw([n, n, n]))]
    }

    /// rule: [n, n, n]
    func matrix(_ ctx: Context) throws -> Variable {
        parameters.count == 1 ? ctx[parameters[0].parameter]
            : try ctx[parameters[0].parameter].matmul(ctx[parameters[1].parameter])
    }
}

/// What every PHM layer of a model shares, saved once under `shared_parameters.` (the adapters library's
/// `shared_parameters.<adapter>.*`): the rule matrices (`shared_phm_rule`, the default; initialised N(0,
/// phm_init_range^2), or U(-1, 1) for `phm_c_init` uniform, as the library does for the shared rule) and, with
/// `shared_W_phm`, the factors of W for the down and the up projection (`W_down_left` `[n, H/n, k]`, `W_down_right`
/// `[n, k, m/n]`, `W_up_left` `[n, m/n, k]`, `W_up_right` `[n, k, H/n]`; H the hidden size, m the bottleneck width;
/// Xavier-normal blocks).
public final class PHMSharedRule: Adapter {
    /// Which projection of a bottleneck a PHM layer is.
    public enum Position: String, Sendable { case down, up }

    public let path = "shared_parameters"
    /// The shared rule (nil unless `shared_phm_rule`).
    public let rule: PHMRule?
    /// The shared W factors by position (empty unless `shared_W_phm`).
    public let w: [Position: (left: Parameter, right: Parameter)]

    init(config: BnConfig, hidden: Int, bottleneck: Int, using rng: inout some RandomNumberGenerator) {
        let n = config.phmDim, k = config.phmRank
        func blocks(_ rows: Int, _ cols: Int) -> Parameter { PHMLayer.xavierBlocks(n, rows, cols, using: &rng) }
        if config.sharedWPhm {
            let (h, m) = (hidden / n, bottleneck / n)
            w = [.down: (blocks(h, k), blocks(k, m)), .up: (blocks(m, k), blocks(k, h))]
        } else {
            w = [:]
        }
        rule = config.sharedPhmRule
            ? PHMRule(config: config, range: config.phmCInit == .normal ? config.phmInitRange : 1, using: &rng) : nil
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        for p in [Position.down, .up] {
            if let f = w[p] { out += [("W_\(p.rawValue)_left", f.left), ("W_\(p.rawValue)_right", f.right)] }
        }
        return out + (rule?.parameters ?? [])
    }
}
