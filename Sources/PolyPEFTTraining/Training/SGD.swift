import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// SGD with optional momentum (PyTorch's: `buf = mu buf + g`, `p -= lr buf`) and L2 weight decay.
public final class SGD: Optimizer {
    public var groups: [ParameterGroup]
    public let momentum: Float
    public private(set) var stepCount = 0
    var store = SlotStore()

    public init(_ groups: [ParameterGroup], momentum: Float = 0) {
        self.groups = groups
        self.momentum = momentum
    }

    public func step(lrScale: Float) {
        stepCount += 1
        for group in groups {
            let lr = group.learningRate * lrScale, wd = group.weightDecay
            for (name, p) in group.parameters {
                guard let grad = p.grad else { continue }
                let g = grad.contiguous().scalars
                let k = SlotStore.key(group.name, name, "momentum")
                let mu = momentum
                p.value.withUnsafeMutableElements { w in
                    // d = g + wd * w;  buf = d on the first step, else mu * buf + d;  w -= lr * buf
                    var d = g
                    if wd != 0 { for i in 0..<d.count { d[i] += wd * w[i] } }
                    if mu != 0 {
                        if let old = store.slots[k] { for i in 0..<d.count { d[i] += mu * old[i] } }
                        store.slots[k] = d
                    }
                    for i in 0..<d.count { w[i] -= lr * d[i] }
                }
            }
        }
    }

    public func state() -> OptimizerState {
        store.export(kind: "sgd", stepCount: stepCount, groups: groups, slotNames: ["momentum"])
    }

    public func load(_ state: OptimizerState) throws {
        store.slots = try SlotStore.validated(state, kind: "sgd", groups: groups)
        stepCount = state.stepCount
    }
}
