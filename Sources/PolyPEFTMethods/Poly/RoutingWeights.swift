import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The router's default pipeline (PEFT's, no `RoutingOptions` variant active) as one primitive: row lookup,
/// sigmoid or relaxed-Bernoulli sample, and normalisation over skills, with one backward that scatters straight
/// into the logit table.
///
/// ```
/// table: [n_tasks, S*K],  rows: [G] task ids,  uniform: [G, S, K] (training only)
/// L = table[rows] viewed [G, S, K]
/// P = sigmoid(L) (eval)  or  RelaxedBernoulli.sample(L, u, T) (train);   dP/dL = p'
/// D = sum_k P + 1e-12;   w = P / D                                                   // w: [G, S, K]
/// backward:  dP_k = (dw_k - sum_j dw_j w_j) / D;   dtable[rows[g]] += dP * p'
/// ```
/// `PolyRouter.weights` composes the same maths from separate ops whenever an option is active; that composition is
/// the test oracle of this one.
enum RoutingWeights {
    static func compute(table: Variable, rows: [Int], splits s: Int, skills k: Int, uniform: Tensor?,
                        temperature: Float) throws -> Variable {
        let g = rows.count, tv = table.value.contiguous()
        guard tv.rank == 2, tv.shape[1] == s * k else {
            throw TensorError("routing_weights", "logit table \(fmt(tv.shape)) does not have rows of \(s) x \(k) logits")
        }
        if let bad = rows.firstIndex(where: { $0 < 0 || $0 >= tv.shape[0] }) {
            throw TensorError("routing_weights", "row \(rows[bad]) of group \(bad) is outside the logit table \(fmt(tv.shape))")
        }
        if let uniform, uniform.shape != [g, s, k] {
            throw TensorError("routing_weights", "noise \(fmt(uniform.shape)) does not match logits \(fmt([g, s, k]))")
        }
        let n = g * s * k
        let uv = uniform?.contiguous()
        var w = Tensor.uninitializedScalars(n)                           // [G, S, K]
        var dpdl = Tensor.uninitializedScalars(n)                        // p' : [G, S, K]
        var denom = Tensor.uninitializedScalars(g * s)                   // D: [G, S]
        Tensor.withBuffers(tv, writing: &w, &dpdl) { pt, pw, pd in
            for gi in 0..<g {
                let lrow = pt.baseAddress! + rows[gi] * s * k
                for i in 0..<(s * k) {
                    let o = gi * s * k + i
                    if let uv {
                        let (y, dy) = RelaxedBernoulli.sampleOne(logit: lrow[i], uniform: uv.storage[uv.offset + o],
                                                                 temperature: temperature)
                        pw[o] = y
                        pd[o] = dy
                    } else {
                        let p = Tensor.sigmoid(lrow[i])
                        pw[o] = p
                        pd[o] = p * (1 - p)
                    }
                }
                for si in 0..<s {
                    let base = (gi * s + si) * k
                    var sum: Float = 0
                    for kk in 0..<k { sum += pw[base + kk] }
                    let dd = sum + 1e-12
                    denom[gi * s + si] = dd
                    for kk in 0..<k { pw[base + kk] /= dd }
                }
            }
        }
        let (wv, dv, den) = (w, dpdl, denom)
        return Variable.record(Tensor(w, shape: [g, s, k]), [table]) { grad, _ in
            let gv = grad.contiguous().scalars                           // dw: [G, S, K]
            var dt = [Float](repeating: 0, count: tv.count)       // dtable: [n_tasks, S*K]
            for gi in 0..<g {
                for si in 0..<s {
                    let base = (gi * s + si) * k
                    var dotw: Float = 0
                    for kk in 0..<k { dotw += gv[base + kk] * wv[base + kk] }
                    let row = rows[gi] * s * k + si * k
                    for kk in 0..<k {
                        dt[row + kk] += (gv[base + kk] - dotw) / den[gi * s + si] * dv[base + kk]
                    }
                }
            }
            return [Tensor(dt, shape: tv.shape)]
        }
    }
}
