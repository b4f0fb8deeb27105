import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// An adapter that wraps a layer of the base model and changes its output:
///
/// ```
/// y = base(x) + delta                                     .dense / .lowRank (fused into a base Linear's matmuls)
/// y = (base(x * inputScale) + x L R s) * outputScale + shift                  .affine
/// ```
/// LoRA, Poly/MHR, IA3 and DoRA conform. The wrapped layer stays a child named `base_layer`, so base weights keep
/// PEFT's names (`fc1.base_layer.weight`) and adapter tensors sit beside it (`fc1.poly_lora_A`). The wrapped layer
/// may itself be an adapter: several adapters on one layer nest, each seeing the one inside as its base.
public protocol AdapterLayer: Adapter, Layer {
    /// The wrapped layer (frozen by the `PeftModel`).
    var base: any Layer { get }
    /// The update in the form the forward applies most cheaply (`AdapterUpdate`).
    func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate
    /// True when the update is known to be nothing for this call (e.g. a task already merged into the base weights),
    /// so the forward returns the base output alone. Default: false.
    func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool
}

extension AdapterLayer {
    public func adapterParameters() -> [(name: String, parameter: Parameter)] {
        namedParameters().filter { !$0.name.hasPrefix("base_layer.") }
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { false }

    /// The wrapped layer when it is a `Linear` (what the fused low-rank path and merging need), else nil.
    public var baseLinear: Linear? { base as? Linear }

    /// The output of this layer minus the base output, for an input `x` (tests, diagnostics).
    public func delta(_ x: Variable, _ ctx: Context) throws -> Variable {
        try forward(x, ctx) - (try base.forward(x, ctx))
    }

    /// The base output with the update applied, or the base output alone when the context disables adapters or the
    /// update is in the base. A low-rank update is fused into a base `Linear`'s matmuls, except when a recorder wants
    /// the base output on its own. With adapters disabled while an update is merged, it throws instead of returning
    /// the merged weight's output.
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        if !ctx.adaptersEnabled, let m = mergedUpdate {
            throw ConfigError("\(path): \(m) is merged into the base weight; unmerge() before running with adapters disabled")
        }
        guard ctx.adaptersEnabled, !updateIsInBase(for: x, ctx) else { return try base.forward(x, ctx) }
        let y: Variable, baseOutput: Variable?
        switch try update(x, ctx) {
        case .dense(let d):
            // The dense update is bound straight from the enum (no copy of it stays alive), so `+` adds in place.
            let b = try base.forward(x, ctx)
            (y, baseOutput) = (try b + (consume d), b)
        case .lowRank(let u):
            if ctx.recorder == nil, let linear = baseLinear { return try u.applied(to: linear, x, ctx) }
            let b = try base.forward(x, ctx)
            (y, baseOutput) = (try b + (try u.delta(for: x)), b)
        case .affine(let a):
            y = try a.applied(to: base, baseLinear: ctx.recorder == nil ? baseLinear : nil, x, ctx)
            baseOutput = ctx.recorder == nil ? nil : try base.forward(x, ctx)
        }
        if let r = ctx.recorder {
            r.record("layer.\(path).input", x.value)
            if let baseOutput { r.record("layer.\(path).base_output", baseOutput.value) }
            r.record("layer.\(path).output", y.value)
        }
        return y
    }
}

extension AdapterLayer {
    /// `base` as a `Linear`, or a `ConfigError` naming what this method needs.
    func requireLinearBase(for what: String) throws -> Linear {
        guard let l = baseLinear else { throw ConfigError("\(path): \(what) needs a Linear base layer, got \(type(of: base))") }
        return l
    }
}
