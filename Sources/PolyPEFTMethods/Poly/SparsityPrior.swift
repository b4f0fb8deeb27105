import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The Indian-Buffet-Process-style sparsity prior of Polytropon (Ponti et al. 2022) on the task x skill allocation,
/// as an optional, differentiable loss term. Finite IBP (Beta-Bernoulli; Griffiths & Ghahramani 2011) over T tasks
/// and K skills, for each split s separately:
///
/// ```
/// pi_k ~ Beta(a, 1),  a = alpha / K;     Z_tk ~ Bernoulli(pi_k)
/// log p(Z) = sum_k [ log a + lgamma(m_k + a) + lgamma(T - m_k + 1) - lgamma(T + 1 + a) ],   m_k = sum_t Z_tk
/// relaxation: Z_tk = sigmoid(L_tk)   (L = the router's logits, all tasks)
/// loss = weight * sum over distinct routers and splits of -log p(Z)
/// d(-log p)/dm_k = -(digamma(m_k + a) - digamma(T - m_k + 1));   dm_k/dL_tk = Z_tk (1 - Z_tk)
/// ```
/// Small `alpha` favours few skills, each used by many tasks (columns near all-0 or all-1): a sparse, reused
/// allocation. With a shared skill its column (always on) is left out.
public enum SparsityPrior {
    /// `-log p(Z)` summed over splits, for probabilities `z: [T, S, K]`; a scalar.
    public static func negativeLogPrior(_ z: Variable, alpha: Float) throws -> Variable {
        guard z.value.rank == 3 else { throw PolyError("sparsity prior: probabilities must be [tasks, splits, skills], got \(fmt(z.shape))") }
        guard alpha.isFinite && alpha > 0 else { throw PolyError("sparsity prior: alpha must be positive, got \(alpha)") }
        let t = Double(z.shape[0]), a = Double(alpha) / Double(z.shape[2])
        let m = try z.sum(axes: [0])                                                         // [S, K]
        let ms = m.value.scalars
        var value = 0.0
        var grad = [Float](repeating: 0, count: ms.count)
        for (i, mk) in ms.enumerated() {
            let x = Double(mk)
            value -= Foundation.log(a) + lgamma(x + a) + lgamma(t - x + 1) - lgamma(t + 1 + a)
            grad[i] = Float(-(digamma(x + a) - digamma(t - x + 1)))
        }
        let d = Tensor(grad, shape: m.shape)
        return Variable.record(Tensor(scalar: Float(value)), [m]) { g, _ in [d * g.scalarValue] }
    }

    /// The digamma function psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series
    /// `ln x - 1/(2x) - 1/(12x^2) + 1/(120x^4) - 1/(252x^6)` (error below 1e-10).
    static func digamma(_ x0: Double) -> Double {
        var x = x0, acc = 0.0
        while x < 10 { acc -= 1 / x; x += 1 }
        let x2 = 1 / (x * x)
        return acc + Foundation.log(x) - 0.5 / x - x2 * (1.0 / 12 - x2 * (1.0 / 120 - x2 / 252))
    }
}

extension PeftModel {
    /// The sparsity prior over every distinct router of the model (see `SparsityPrior`), times `weight`, as a
    /// scalar to add to the training loss. Recorded when `ctx` records gradients.
    public func sparsityPriorLoss(alpha: Float, weight: Float, _ ctx: Context) throws -> Variable {
        var total: Variable?
        for (_, router) in distinctRouters {
            let k = router.nSkills - (router.options.sharedSkill ? 1 : 0)
            guard k >= 1 else { continue }
            var z = try router.logitTable(ctx).reshaped([router.nTasks, router.nSplits, router.nSkills]).sigmoid()   // [T, S, K]
            if k < router.nSkills { z = try z.sliced(axis: 2, start: 0, end: k) }
            let term = try SparsityPrior.negativeLogPrior(z, alpha: alpha)
            total = try total.map { try $0 + term } ?? term
        }
        guard let total else { throw PolyError("sparsity prior: the model has no Poly layers") }
        return total * weight
    }
}
