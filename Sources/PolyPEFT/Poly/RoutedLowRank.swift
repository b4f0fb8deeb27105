/// Routed low-rank update with **per-row** routing weights, computed with a few wide matmuls instead of one small
/// mix per sample. Used in training (every sample draws its own relaxed-Bernoulli weights) and whenever a batch
/// has so many distinct tasks that mixing per task would mean many tiny matmuls.
///
/// ```
/// x: [M, in] (splits x_s: [M, d]),  A: [S, K, d, r],  B: [S, K, r, e],  w: [M, S, K],  out: [M, S*e]
/// parameters:  G_s = x_s [A_s,1 .. A_s,K]           [M, K*r]
///              h   = sum_s sum_k w[s,k] G_s,k         [M, r]
///              Q_s = h [B_s,1 .. B_s,K]               [M, K*e]
///              out_s = sum_k w[s,k] Q_s,k * scale     (= x A_full B_full / r, PEFT's maths, per row)
/// outputs:     H = x [A_1 .. A_K]   (A_k = stack_s A_s,k)      [M, K*r]
///              out_s = (H scaled by w[s,k] per k block) [B_s,1; ..; B_s,K] * scale
/// ```
/// Backward runs the same matmuls transposed; the weighted sums are loops over [M, K, r] or [M, K, e].
enum RoutedLowRank {
    static func apply(_ x: Variable, a: Variable, b: Variable, weights w: Variable, mode: MixingMode, scale: Float) throws -> Variable {
        let av = a.value, bv = b.value
        let (s, k, d, r, e) = (av.shape[0], av.shape[1], av.shape[2], av.shape[3], bv.shape[3])
        let xv = x.value.contiguous(), wv = w.value.contiguous().scalars       // x: [M, in], w: [M, S, K]
        let m = xv.shape[0]
        switch mode {
        case .outputs:
            let aWide = try av.permuted([0, 2, 1, 3]).reshaped([s * d, k * r]).contiguous()   // [in, K*r]
            let h = try xv.matmul(aWide).scalars                                              // [M, K*r]
            let bStack = try (0..<s).map { try bv.selecting(axis: 0, index: $0).reshaped([k * r, e]) }   // [K*r, e]
            var out = [Float](repeating: 0, count: m * s * e)
            var scaled: [[Float]] = []
            for si in 0..<s {
                let hs = weightBlocks(h, wv, m: m, s: s, split: si, k: k, width: r)          // [M, K*r]
                let ys = try Tensor(hs, shape: [m, k * r]).matmul(bStack[si]).scalars        // [M, e]
                place(ys, into: &out, m: m, width: e, column: si * e, total: s * e, scale: scale)
                scaled.append(hs)
            }
            return Variable.record(Tensor(out, shape: [m, s * e]), [x, a, b, w]) { g, needs in
                let gv = g.contiguous().scalars
                var dh = [Float](repeating: 0, count: m * k * r), dw = [Float](repeating: 0, count: m * s * k)
                var db: [Tensor] = []
                for si in 0..<s {
                    let gs = Tensor(take(gv, m: m, width: e, column: si * e, total: s * e, scale: scale), shape: [m, e])
                    let dhs = try gs.matmul(bStack[si].T).scalars                               // [M, K*r]
                    if needs[2] { db.append(try Tensor(scaled[si], shape: [m, k * r]).T.matmul(gs).reshaped([k, r, e])) }
                    accumulateBlocks(dhs, h, wv, into: &dh, dw: &dw, m: m, s: s, split: si, k: k, width: r)
                }
                let dhT = Tensor(dh, shape: [m, k * r])
                let dx = needs[0] ? try dhT.matmul(aWide.T) : nil
                let da = needs[1] ? try xv.T.matmul(dhT).reshaped([s, d, k, r]).permuted([0, 2, 1, 3]).contiguous() : nil
                return [dx, da, needs[2] ? try Tensor.stack(db) : nil, needs[3] ? Tensor(dw, shape: [m, s, k]) : nil]
            }
        case .parameters:
            let aWide = try (0..<s).map { try av.selecting(axis: 0, index: $0).permuted([1, 0, 2]).reshaped([d, k * r]).contiguous() }  // [d, K*r]
            let bWide = try (0..<s).map { try bv.selecting(axis: 0, index: $0).permuted([1, 0, 2]).reshaped([r, k * e]).contiguous() }  // [r, K*e]
            let xs = try (0..<s).map { try xv.sliced(axis: 1, start: $0 * d, end: ($0 + 1) * d) }                                       // [M, d]
            let gsAll = try (0..<s).map { try xs[$0].matmul(aWide[$0]).scalars }                                                         // [M, K*r]
            var h = [Float](repeating: 0, count: m * r)
            for si in 0..<s { sumBlocks(gsAll[si], wv, into: &h, m: m, s: s, split: si, k: k, width: r) }
            let hT = Tensor(h, shape: [m, r])
            let qs = try (0..<s).map { try hT.matmul(bWide[$0]).scalars }                                                                 // [M, K*e]
            var out = [Float](repeating: 0, count: m * s * e)
            for si in 0..<s {
                var ys = [Float](repeating: 0, count: m * e)
                sumBlocks(qs[si], wv, into: &ys, m: m, s: s, split: si, k: k, width: e)
                place(ys, into: &out, m: m, width: e, column: si * e, total: s * e, scale: scale)
            }
            return Variable.record(Tensor(out, shape: [m, s * e]), [x, a, b, w]) { g, needs in
                let gv = g.contiguous().scalars
                var dw = [Float](repeating: 0, count: m * s * k), dh = [Float](repeating: 0, count: m * r)
                var db: [Tensor] = []
                for si in 0..<s {
                    let gs = take(gv, m: m, width: e, column: si * e, total: s * e, scale: scale)   // [M, e]
                    var dq = [Float](repeating: 0, count: m * k * e)
                    accumulateBlocks(spread(gs, m: m, k: k, width: e), qs[si], wv, into: &dq, dw: &dw, m: m, s: s, split: si, k: k, width: e, broadcast: true)
                    let dqT = Tensor(dq, shape: [m, k * e])
                    if needs[2] { db.append(try hT.T.matmul(dqT).reshaped([r, k, e]).permuted([1, 0, 2]).contiguous()) }
                    let dhs = try dqT.matmul(bWide[si].T).scalars
                    for i in 0..<(m * r) { dh[i] += dhs[i] }
                }
                var dxParts: [Tensor] = [], da: [Tensor] = []
                for si in 0..<s {
                    var dg = [Float](repeating: 0, count: m * k * r)
                    accumulateBlocks(spread(dh, m: m, k: k, width: r), gsAll[si], wv, into: &dg, dw: &dw, m: m, s: s, split: si, k: k, width: r, broadcast: true)
                    let dgT = Tensor(dg, shape: [m, k * r])
                    if needs[1] { da.append(try xs[si].T.matmul(dgT).reshaped([d, k, r]).permuted([1, 0, 2]).contiguous()) }
                    if needs[0] { dxParts.append(try dgT.matmul(aWide[si].T)) }
                }
                return [needs[0] ? try Tensor.concatenate(dxParts, axis: 1) : nil, needs[1] ? try Tensor.stack(da) : nil,
                        needs[2] ? try Tensor.stack(db) : nil, needs[3] ? Tensor(dw, shape: [m, s, k]) : nil]
            }
        }
    }

    /// `out[m, kk*width + j] = v[m, kk*width + j] * w[m, split, kk]`.
    static func weightBlocks(_ v: [Float], _ w: [Float], m: Int, s: Int, split: Int, k: Int, width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: v.count)
        for row in 0..<m { for kk in 0..<k {
            let wt = w[(row * s + split) * k + kk], base = (row * k + kk) * width
            for j in 0..<width { out[base + j] = v[base + j] * wt }
        } }
        return out
    }

    /// `into[m, j] += sum_kk w[m, split, kk] * v[m, kk*width + j]`.
    static func sumBlocks(_ v: [Float], _ w: [Float], into: inout [Float], m: Int, s: Int, split: Int, k: Int, width: Int) {
        for row in 0..<m { for kk in 0..<k {
            let wt = w[(row * s + split) * k + kk], base = (row * k + kk) * width
            for j in 0..<width { into[row * width + j] += wt * v[base + j] }
        } }
    }

    /// For upstream gradient blocks `g [M, K*width]` (each k block already holding the gradient of that block) and
    /// the forward's unweighted values `v`: `into += g * w[split, k]` and `dw[m, split, k] += <v_k, g_k>`.
    static func accumulateBlocks(_ g: [Float], _ v: [Float], _ w: [Float], into: inout [Float], dw: inout [Float],
                                 m: Int, s: Int, split: Int, k: Int, width: Int, broadcast: Bool = false) {
        for row in 0..<m { for kk in 0..<k {
            let wi = (row * s + split) * k + kk, wt = w[wi], base = (row * k + kk) * width
            var dot: Float = 0
            for j in 0..<width {
                into[base + j] += g[base + j] * wt
                dot += v[base + j] * g[base + j]
            }
            dw[wi] += dot
        } }
    }

    /// Repeats each row's `width` values K times: [M, width] -> [M, K*width].
    static func spread(_ v: [Float], m: Int, k: Int, width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m * k * width)
        for row in 0..<m { for kk in 0..<k { for j in 0..<width { out[(row * k + kk) * width + j] = v[row * width + j] } } }
        return out
    }

    /// Writes `v [M, width] * scale` into columns `column ..< column+width` of `out [M, total]`.
    static func place(_ v: [Float], into out: inout [Float], m: Int, width: Int, column: Int, total: Int, scale: Float) {
        for row in 0..<m { for j in 0..<width { out[row * total + column + j] = v[row * width + j] * scale } }
    }

    /// Columns `column ..< column+width` of `v [M, total]`, times `scale`.
    static func take(_ v: [Float], m: Int, width: Int, column: Int, total: Int, scale: Float) -> [Float] {
        var out = [Float](repeating: 0, count: m * width)
        for row in 0..<m { for j in 0..<width { out[row * width + j] = v[row * total + column + j] * scale } }
        return out
    }
}
