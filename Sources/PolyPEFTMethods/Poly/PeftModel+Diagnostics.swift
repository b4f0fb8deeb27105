import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The learned task x skill allocation of a model, per Poly layer and over all layers, with the routing metrics of
/// `RoutingDiagnostics` (sparsity, discreteness, skill usage, task similarity).
///
/// ```
/// allocation[t][k]    = (1/S) sum_s w[t, s, k]         evaluation-mode mixing weights (rows sum to 1)
/// probabilities[t][k] = (1/S) sum_s sigmoid(L[t, s, k]) routing probabilities before normalisation
/// aggregate           = the mean of the per-layer matrices over layers (each shared router counted per layer)
/// summary             = RoutingSummary(probabilities)  (its metrics are defined on probabilities)
/// ```
public struct RoutingAllocation: Sendable, Equatable {
    /// The layer path, or nil for the aggregate over layers.
    public let path: String?
    public let allocation: [[Float]]          // [n_tasks][K]
    public let probabilities: [[Float]]       // [n_tasks][K]
    public let summary: RoutingSummary

    init(path: String?, allocation: [[Float]], probabilities: [[Float]], threshold: Float) {
        self.path = path
        self.allocation = allocation
        self.probabilities = probabilities
        summary = RoutingSummary(probabilities, threshold: threshold)
    }
}

/// Every layer's allocation, the aggregate, and the task names labelling the rows.
public struct RoutingReport: Sendable, Equatable {
    public let taskNames: [String]
    public let layers: [RoutingAllocation]
    public let aggregate: RoutingAllocation

    /// How well the aggregate allocation recovers a known 0/1 allocation `truth` ([n_tasks][K_true]).
    public func recovery(truth: [[Float]]) throws -> AllocationRecovery {
        guard truth.count == taskNames.count else {
            throw PolyError("routing report: the true allocation has \(truth.count) rows, the model \(taskNames.count) tasks")
        }
        return RoutingDiagnostics.recovery(learned: aggregate.probabilities, truth: truth)
    }
}

extension PeftModel {
    /// The routing report of every Poly layer (`tasks` names the rows; default `task0`, `task1`, ...).
    /// `threshold` is `RoutingDiagnostics.sparsity`'s.
    public func routingReport(tasks: TaskTable? = nil, threshold: Float = 0.1) throws -> RoutingReport {
        let layers = polyLayers
        guard let first = layers.first?.layer else { throw PolyError("routing report: the model has no Poly layers") }
        let n = first.nTasks
        let names = tasks ?? TaskTable.numbered(n)
        guard names.count == n else { throw PolyError("routing report: the task table names \(names.count) tasks, the adapter has \(n)") }
        var perLayer: [RoutingAllocation] = []
        for (path, layer) in layers {
            guard layer.nSkills == first.nSkills, layer.nTasks == n else {
                throw PolyError("routing report: layer \(path) has \(layer.nTasks) tasks x \(layer.nSkills) skills, others \(n) x \(first.nSkills)")
            }
            perLayer.append(RoutingAllocation(path: path, allocation: try splitMean(layer.router.allocation()),
                                              probabilities: try splitMean(layer.router.probabilities()), threshold: threshold))
        }
        func average(_ m: [[[Float]]]) -> [[Float]] {
            (0..<n).map { t in (0..<first.nSkills).map { k in m.reduce(0) { $0 + $1[t][k] } / Float(m.count) } }
        }
        let aggregate = RoutingAllocation(path: nil, allocation: average(perLayer.map(\.allocation)),
                                          probabilities: average(perLayer.map(\.probabilities)), threshold: threshold)
        return RoutingReport(taskNames: names.names, layers: perLayer, aggregate: aggregate)
    }

    /// `[T, S, K]` -> `[T][K]` averaged over splits.
    private func splitMean(_ w: Tensor) throws -> [[Float]] {
        let m = try w.mean(axes: [1])                       // [T, K]
        let k = m.shape[1], v = m.scalars
        return (0..<m.shape[0]).map { Array(v[($0 * k)..<(($0 + 1) * k)]) }
    }
}
