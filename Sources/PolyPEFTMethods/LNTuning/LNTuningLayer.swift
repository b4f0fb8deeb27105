import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// LN tuning around a norm (PEFT's `LNTuningLayer`): a trainable copy of the layer runs in its place.
///
/// ```
/// ln_tuning_layers = copy(base_layer)         its weight (and bias) train: ln_tuning_layers.weight, .bias
/// y = ln_tuning_layers(x)                     (adapters disabled: base_layer(x))
/// merged:  base_layer's parameters take the copy's values (the originals are kept to unmerge)
/// ```
/// PEFT swaps the two modules to merge; copying the values gives the same forward and keeps every key in place.
public final class LNTuningLayer: Module, AdapterLayer {
    public let base: any Layer
    public let path: String
    /// The trained copy (child `ln_tuning_layers`).
    public let tuned: any Layer
    /// The base's own values while the copy's are merged into it, by parameter name.
    private var originals: [String: Tensor]?

    public var mergedUpdate: String? { originals == nil ? nil : "the tuned norm" }

    public init(wrapping base: any CopyableLayer, path: String) {
        self.base = base
        self.path = path
        tuned = base.copied()
        super.init()
        addChild("base_layer", base)
        addChild("ln_tuning_layers", tuned)
    }

    /// The tuned output minus the base output (what the copy changes).
    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        .dense(try tuned.forward(x, ctx) - (try base.forward(x, ctx)))
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { originals != nil }

    /// The copy's output (the base's with adapters disabled or the copy merged).
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        if !ctx.adaptersEnabled, let m = mergedUpdate {
            throw ConfigError("\(path): \(m) is merged into the base layer; unmerge() before running with adapters disabled")
        }
        guard ctx.adaptersEnabled, originals == nil else { return try base.forward(x, ctx) }
        let y = try tuned.forward(x, ctx)
        if let r = ctx.recorder {
            r.record("layer.\(path).input", x.value)
            r.record("layer.\(path).base_output", try base.forward(x, ctx).value)
            r.record("layer.\(path).output", y.value)
        }
        return y
    }

    /// Gives the base layer the copy's values.
    public func merge() throws {
        guard originals == nil else { return }
        let tunedValues = Dictionary(uniqueKeysWithValues: tuned.namedParameters().map { ($0.name, $0.parameter.value) })
        var kept: [String: Tensor] = [:]
        for (name, p) in base.namedParameters() {
            kept[name] = p.value
            if let v = tunedValues[name] { p.value = v.contiguous() }
        }
        originals = kept
    }

    /// Gives the base layer its own values back.
    public func unmerge() throws {
        guard let kept = originals else { return }
        for (name, p) in base.namedParameters() { if let v = kept[name] { p.value = v } }
        originals = nil
    }
}
