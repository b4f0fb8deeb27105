import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// A first-order optimizer over parameter groups. State is keyed by group and parameter name and can be saved and
/// restored exactly, so a resumed run continues bit for bit.
public protocol Optimizer: AnyObject {
    var groups: [ParameterGroup] { get set }
    /// Number of steps taken.
    var stepCount: Int { get }
    /// Applies one update from the parameters' current gradients, with each group's learning rate multiplied by
    /// `lrScale` (from a schedule). Parameters without a gradient are skipped.
    func step(lrScale: Float)
    /// Everything needed to resume.
    func state() -> OptimizerState
    /// Restores a saved state; throws when it does not fit these parameters.
    func load(_ state: OptimizerState) throws
}

extension Optimizer {
    public func step() { step(lrScale: 1) }
    /// Clears the gradients of every parameter in every group.
    public func zeroGrad() { for g in groups { for (_, p) in g.parameters { p.zeroGrad() } } }
}

/// Saved optimizer state: step count and named per-parameter buffers (e.g. `"skills/fc1.poly_lora_A#m"`).
public struct OptimizerState: Codable, Equatable, Sendable {
    public var kind: String
    public var stepCount: Int
    public var buffers: [String: [Float]]
    public var shapes: [String: [Int]]

    public init(kind: String, stepCount: Int, buffers: [String: [Float]], shapes: [String: [Int]]) {
        self.kind = kind
        self.stepCount = stepCount
        self.buffers = buffers
        self.shapes = shapes
    }
}

/// Named per-parameter buffers shared by the optimizers.
struct SlotStore {
    var slots: [String: [Float]] = [:]

    static func key(_ group: String, _ param: String, _ slot: String) -> String { "\(group)/\(param)#\(slot)" }

    func export(kind: String, stepCount: Int, groups: [ParameterGroup], slotNames: [String]) -> OptimizerState {
        var shapes: [String: [Int]] = [:]
        for g in groups { for (n, p) in g.parameters { for s in slotNames { shapes[SlotStore.key(g.name, n, s)] = p.value.shape } } }
        return OptimizerState(kind: kind, stepCount: stepCount, buffers: slots,
                              shapes: shapes.filter { slots[$0.key] != nil })
    }

    static func validated(_ state: OptimizerState, kind: String, groups: [ParameterGroup]) throws -> [String: [Float]] {
        guard state.kind == kind else {
            throw AutogradError("optimizer state is for \(state.kind), not \(kind)")
        }
        var counts: [String: Int] = [:]
        for g in groups { for (n, p) in g.parameters { counts["\(g.name)/\(n)"] = p.count } }
        for (k, v) in state.buffers {
            let owner = String(k.split(separator: "#").first ?? "")
            guard let c = counts[owner] else { throw AutogradError("optimizer state has a buffer '\(k)' for no known parameter") }
            guard c == v.count else { throw AutogradError("optimizer state buffer '\(k)' has \(v.count) values, the parameter \(c)") }
        }
        return state.buffers
    }
}
