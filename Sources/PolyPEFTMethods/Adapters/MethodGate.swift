import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A learned per-sample gate on a method's output: the adapters library's `use_gating` (UniPELT), read from the
/// input, or PolyPEFT's task-routed gate, read from a table of task logits (a routed union: each task learns which
/// method it uses, as Poly's router learns which skills):
///
/// ```
/// input:  g = mean_t sigmoid(x W^T + b)        x [B, T, in] (or [B, in]: no mean) -> g [B, outputs]
/// task:   g = sigmoid(task_logits[task_b])     task_logits [n_tasks, outputs], zeros at the start (g = 1/2)
/// ```
/// Parameters are named as the library names its gate (`weight`, `bias`), or `task_logits`; the task table has the
/// router's role (`ParameterRole.router`: it learns at the router's rate). Task ids come from the context.
public final class MethodGate: Module {
    public let outputs: Int
    let linear: Linear?
    let taskLogits: Parameter?

    /// The library's gate: `linear` (`[outputs, in]`, initialised by the caller).
    public init(linear: Linear) {
        outputs = linear.outFeatures
        self.linear = linear
        taskLogits = nil
        super.init()
        addParameter("weight", linear.weight)
        if let b = linear.bias { addParameter("bias", b) }
    }

    /// A task-routed gate for `tasks` tasks.
    public init(tasks: Int, outputs: Int) {
        self.outputs = outputs
        linear = nil
        let t = Parameter(Tensor.zeros([tasks, outputs]))
        taskLogits = t
        super.init()
        addParameter("task_logits", t)
    }

    /// Tasks of a task-routed gate, nil for an input gate.
    public var tasks: Int? { taskLogits?.value.shape[0] }

    /// The role of an adapter's parameter `name` when its gate is the child `gate`: the task table learns as a
    /// router, everything else as the adapter (what `Adapter.parameterRole` returns for gated methods).
    static func role(ofAdapterParameter name: String) -> ParameterRole {
        name == "gate.task_logits" ? .router : .adapter
    }

    /// `g`: `[B, outputs]` for the input `x` (`[B, T, in]` or `[B, in]`). `place` names the gate in errors.
    public func value(_ x: Variable, place: String, _ ctx: Context) throws -> Variable {
        let b = x.shape[0]
        if let t = taskLogits {
            guard let ids = ctx.taskIDs else {
                throw ConfigError("\(place): a task-routed gate needs task ids (one per sample) in the context")
            }
            guard ids.count == b else {
                throw ConfigError("\(place): \(ids.count) task ids for a batch of \(b)")
            }
            let n = t.value.shape[0]
            if let bad = ids.first(where: { $0 < 0 || $0 >= n }) {
                throw ConfigError("\(place): task id \(bad) is out of range (the gate has \(n) tasks)")
            }
            return try ctx[t].indexSelect(axis: 0, ids).sigmoid()                          // [B, outputs]
        }
        let s = try linear!.forward(x, ctx).sigmoid()                                       // [B, T, outputs]
        return x.shape.count >= 3 ? try s.mean(axes: [1]) : s
    }
}

/// A config whose method can be gated (`use_gating`), by the input or, with `polypeft_task_gates`, by the task.
public protocol GateableConfig: PeftConfig {
    var useGating: Bool { get set }
    /// Tasks of the task-routed gates (`polypeft_task_gates`), or nil for the library's input gates.
    var taskGates: Int? { get set }
}

extension GateableConfig {
    /// The gate of one adapter: the library's input gate (`make` builds and initialises its linear layer, so that
    /// the draws stay the library's), a task table with `taskGates`, or nil without `use_gating`.
    func makeGate(_ make: () -> Linear, outputs: Int = 1) -> MethodGate? {
        guard useGating else { return nil }
        if let n = taskGates { return MethodGate(tasks: n, outputs: outputs) }
        return MethodGate(linear: make())
    }

    /// `polypeft_task_gates`: in 1...65536 and only with `use_gating`.
    func validateTaskGates(context: String) throws {
        guard let n = taskGates else { return }
        guard (1...65536).contains(n) else { throw ConfigError("\(context): polypeft_task_gates must be in 1...65536, got \(n)") }
        guard useGating else { throw ConfigError("\(context): polypeft_task_gates needs use_gating (the gates it routes by task)") }
    }
}

extension ConfigField where Config: GateableConfig {
    /// `polypeft_task_gates`: PolyPEFT's key, written only when set (a config without it is the library's as is).
    static var taskGates: ConfigField {
        ConfigField("polypeft_task_gates", read: { r, c in
            guard let v = r.present("polypeft_task_gates"), v != .null else { return }
            guard let n = v.intValue else { throw r.fail("polypeft_task_gates", "a number of tasks", v) }
            c.taskGates = n
        }, write: { c in c.taskGates.map { .int($0) } })
    }
}
