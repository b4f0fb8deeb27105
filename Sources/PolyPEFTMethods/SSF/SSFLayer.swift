import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// SSF around a layer: a learned per-feature scale and shift of the layer's output.
///
/// ```
/// ssf_scale: [out], ssf_shift: [out]      y = base(x) * ssf_scale + ssf_shift
/// merged, Linear:                         W' = diag(scale) W,  bias' = scale * bias + shift
/// merged, LayerNorm:                      weight' = scale * weight,  bias' = scale * bias + shift
/// merged, RMSNorm (T5):                   weight' = scale * weight   (a shift has no bias to go into: an error)
/// ```
/// A base without a bias takes the shift only when it is zero; otherwise merging throws saying so. The update is
/// affine (`AdapterUpdate.affine`): one elementwise pass, nothing after merging. Unmerging restores the base's own
/// values (kept at merge time), exactly.
public final class SSFLayer: Module, AdapterLayer {
    public let base: any Layer
    public let path: String
    public let scale: Parameter
    public let shift: Parameter
    /// The base's values while the scale and shift are merged into them, by parameter name.
    private var originals: [String: Tensor]?

    public var mergedUpdate: String? { originals == nil ? nil : "the SSF scale and shift" }

    /// Wraps a linear layer (or an adapter around one: its output features) or a norm (its weight's features).
    public init(wrapping base: any Layer, path: String, initStd: Float, using rng: inout some RandomNumberGenerator) throws {
        let features: Int
        if let f = base as? any FeatureLayer {
            features = f.outFeatures
        } else if let n = base as? LayerNorm {
            features = n.weight.value.shape[0]
        } else if let n = base as? RMSNorm {
            features = n.weight.value.shape[0]
        } else {
            throw ConfigError("target module '\(path)' is a \(type(of: base)); SSF scales and shifts the output of linear layers and norms")
        }
        self.base = base
        self.path = path
        scale = Parameter(initStd > 0 ? Tensor.normal([features], mean: 1, std: initStd, using: &rng) : Tensor.ones([features]))
        shift = Parameter(initStd > 0 ? Tensor.normal([features], std: initStd, using: &rng) : Tensor.zeros([features]))
        super.init()
        addChild("base_layer", base)
        addParameter("ssf_scale", scale)
        addParameter("ssf_shift", shift)
    }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        .affine(AffineUpdate(outputScale: ctx[scale], shift: ctx[shift]))
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { originals != nil }

    /// The weight and bias the scale and shift fold into.
    private func mergeTarget() throws -> (weight: Parameter, bias: Parameter?) {
        switch base {
        case let l as Linear: return (l.weight, l.bias)
        case let n as LayerNorm: return (n.weight, n.bias)
        case let n as RMSNorm: return (n.weight, nil)
        default: throw ConfigError("\(path): merging SSF needs a Linear or norm base layer, got \(type(of: base))")
        }
    }

    /// Folds the scale into the base weight and the shift into its bias.
    public func merge() throws {
        guard originals == nil else { return }
        let (w, b) = try mergeTarget()
        let s = scale.value.contiguous(), t = shift.value.contiguous()
        if b == nil, let i = t.scalars.firstIndex(where: { $0 != 0 }) {
            throw ConfigError("\(path): the base layer has no bias, so the SSF shift (ssf_shift[\(i)] = \(t.scalars[i])) cannot be merged")
        }
        var kept = ["weight": w.value]
        // A Linear's weight is [out, in]: each row scales; a norm's weight is [D]: elementwise.
        w.value = try (w.value * (w.value.rank == 2 ? s.reshaped([-1, 1]) : s)).contiguous()
        if let b {
            kept["bias"] = b.value
            b.value = try (b.value * s + t).contiguous()
        }
        originals = kept
    }

    /// Gives the base its own weight and bias back.
    public func unmerge() throws {
        guard let kept = originals else { return }
        let (w, b) = try mergeTarget()
        w.value = kept["weight"]!
        if let b, let v = kept["bias"] { b.value = v }
        originals = nil
    }
}
