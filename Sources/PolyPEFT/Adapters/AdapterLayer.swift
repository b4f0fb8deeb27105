/// A layer that wraps a frozen base `Linear` and adds a learned update:
///
/// ```
/// y = base(x) + delta(x, context)
/// ```
/// LoRA, Poly/MHR and later IA3, bottleneck adapters and DoRA conform; unions (MAM, UniPELT gating) compose them.
/// The base layer stays a child named `base_layer`, so base weights keep PEFT's names
/// (`fc1.base_layer.weight`) and adapter tensors sit beside it (`fc1.poly_lora_A`).
public protocol AdapterLayer: Layer {
    /// The wrapped layer (frozen by the wrapper).
    var baseLayer: Linear { get }
    /// The dotted path of this layer in its model, used in error messages and recorded intermediates.
    var path: String { get }
    /// The adapter's own parameters with names relative to this layer (`poly_lora_A`, `poly_router.module_logits`).
    func adapterParameters() -> [(name: String, parameter: Parameter)]
    /// The update alone, for an input of the base layer.
    func delta(_ x: Variable, _ ctx: Context) throws -> Variable
    /// The update in the form the forward uses: a low-rank update (`LowRankUpdate`) is fused into the base layer's
    /// matmuls, a dense one is added to the base output. Default: `.dense(delta(x, ctx))`. An adapter that
    /// implements it makes `delta` return `update(x, ctx).dense(for: x)`, so the two never disagree.
    func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate
    /// True when the update is known to be zero for this call (e.g. a task already merged into the base weights), so
    /// the forward returns the base output without computing or adding it. Default: false.
    func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool
    /// What is merged into the base weight right now (`"the LoRA update"`, `"task 3's update"`), or nil. A forward
    /// with adapters disabled throws while something is merged: the base weight is not the base model's. Default: nil.
    var mergedUpdate: String? { get }
}

extension AdapterLayer {
    public func adapterParameters() -> [(name: String, parameter: Parameter)] {
        namedParameters().filter { !$0.name.hasPrefix("base_layer.") }
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { false }

    public var mergedUpdate: String? { nil }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate { .dense(try delta(x, ctx)) }

    /// `base(x) + update`, or `base(x)` alone when the context disables adapters or the update is in the base.
    /// A low-rank update is fused into the base layer's matmuls (`LowRankUpdate.applied`), except when a recorder
    /// wants the base output on its own. With adapters disabled while an update is merged, it throws instead of
    /// returning the merged weight's output.
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        if !ctx.adaptersEnabled, let m = mergedUpdate {
            throw PolyError("\(path): \(m) is merged into the base weight; unmerge() before running with adapters disabled")
        }
        guard ctx.adaptersEnabled, !updateIsInBase(for: x, ctx) else { return try baseLayer.forward(x, ctx) }
        // The dense update is bound straight from the enum (no copy of it stays alive), so `+` adds in place.
        let dense: Variable
        switch try update(x, ctx) {
        case .dense(let d): dense = d
        case .lowRank(let u):
            if ctx.recorder == nil { return try u.applied(to: baseLayer, x, ctx) }
            dense = try u.delta(for: x)
        }
        let base = try baseLayer.forward(x, ctx)
        let y = try base + (consume dense)
        if let r = ctx.recorder {
            r.record("layer.\(path).input", x.value)
            r.record("layer.\(path).base_output", base.value)
            r.record("layer.\(path).output", y.value)
        }
        return y
    }
}
