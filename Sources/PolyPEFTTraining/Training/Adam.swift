import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Adam and AdamW (PyTorch's formulation, bias-corrected):
///
/// ```
/// m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
/// mhat = m / (1 - b1^t);   vhat = v / (1 - b2^t)
/// Adam:  g += wd * p  (L2, before the moments)
/// AdamW: p -= lr * wd * p  (decoupled, before the update)
/// p -= lr * mhat / (sqrt(vhat) + eps)
/// ```
public final class Adam: Optimizer {
    public var groups: [ParameterGroup]
    public let beta1: Float, beta2: Float, eps: Float
    /// True for AdamW (decoupled weight decay).
    public let decoupled: Bool
    public private(set) var stepCount = 0
    var store = SlotStore()

    public init(_ groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, decoupled: Bool = false) {
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.decoupled = decoupled
    }

    /// AdamW (PyTorch's default weight decay 0.01 is the caller's choice per group).
    public static func adamW(_ groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) -> Adam {
        Adam(groups, beta1: beta1, beta2: beta2, eps: eps, decoupled: true)
    }

    var kind: String { decoupled ? "adamw" : "adam" }

    public func step(lrScale: Float) {
        stepCount += 1
        let t = Float(stepCount)
        let bc1 = 1 - _powf(beta1, t), bc2 = 1 - _powf(beta2, t)
        for group in groups {
            let lr = group.learningRate * lrScale, wd = group.weightDecay
            for (name, p) in group.parameters {
                guard let grad = p.grad else { continue }
                let count = grad.count
                let mk = SlotStore.key(group.name, name, "m"), vk = SlotStore.key(group.name, name, "v")
                let (b1, b2, e, dec) = (beta1, beta2, eps, decoupled)
                // The moments are updated in place in the store (no copy per step); the gradient is read in place.
                var m = store.slots.removeValue(forKey: mk) ?? [Float](repeating: 0, count: count)
                var v = store.slots.removeValue(forKey: vk) ?? [Float](repeating: 0, count: count)
                p.value.withUnsafeMutableElements { w in
                    Tensor.withBuffers(grad, writing: &m, &v) { g, m, v in
                        for i in 0..<count {
                            var gi = g[i]
                            if wd != 0 { if dec { w[i] -= lr * wd * w[i] } else { gi += wd * w[i] } }
                            m[i] = b1 * m[i] + (1 - b1) * gi
                            v[i] = b2 * v[i] + (1 - b2) * gi * gi
                            let mhat = m[i] / bc1, vhat = v[i] / bc2
                            w[i] -= lr * mhat / (vhat.squareRoot() + e)
                        }
                    }
                }
                store.slots[mk] = m
                store.slots[vk] = v
            }
        }
    }

    public func state() -> OptimizerState {
        store.export(kind: kind, stepCount: stepCount, groups: groups, slotNames: ["m", "v"])
    }

    public func load(_ state: OptimizerState) throws {
        store.slots = try SlotStore.validated(state, kind: kind, groups: groups)
        stepCount = state.stepCount
    }
}
