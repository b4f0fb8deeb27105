import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// IA3 around a layer (PEFT's `ia3.Linear`): a learned vector scales the layer's output, or, for a feed-forward
/// module, its input.
///
/// ```
/// ia3_l: [out, 1]   y = base(x) * l                   (l broadcast over the output features)
/// ia3_l: [1, in]    y = base(x * l)                   (feed-forward modules)
/// merged (Linear):  W' = W * l (rows; bias' = bias * l)   or   W' = W * l (columns; bias unchanged)
/// ```
/// The update is affine (`AdapterUpdate.affine`): one elementwise pass, nothing after merging.
public final class IA3Layer: Module, AdapterLayer, FeatureLayer {
    public let base: any Layer
    public let path: String
    /// True: scales the input (`ia3_l` `[1, in]`); false: the output (`[out, 1]`).
    public let isFeedforward: Bool
    public let scale: Parameter
    public let inFeatures: Int
    public let outFeatures: Int
    /// The scale merged into the base weight, if any (kept to unmerge exactly as PEFT does, by division).
    private var mergedScale: Tensor?

    public var mergedUpdate: String? { mergedScale == nil ? nil : "the IA3 scaling" }

    /// PEFT's initialisation: `ia3_l` = 1 when `initWeights` (the layer starts as its base), else N(0, 1).
    public init(wrapping base: any FeatureLayer, path: String, feedforward: Bool, initWeights: Bool = true,
                using rng: inout some RandomNumberGenerator) {
        self.base = base
        self.path = path
        isFeedforward = feedforward
        inFeatures = base.inFeatures
        outFeatures = base.outFeatures
        let shape = feedforward ? [1, base.inFeatures] : [base.outFeatures, 1]
        scale = Parameter(initWeights ? Tensor.ones(shape) : Tensor.normal(shape, std: 1, using: &rng))
        super.init()
        addChild("base_layer", base)
        addParameter("ia3_l", scale)
    }

    /// Wraps `layer` when it has feature widths (a `Linear` or an adapter around one).
    convenience init(wrapping layer: any Layer, path: String, feedforward: Bool, initWeights: Bool,
                     using rng: inout some RandomNumberGenerator) throws {
        guard let f = layer as? any FeatureLayer else {
            throw ConfigError("target module '\(path)' is a \(type(of: layer)); IA3 adapts layers with input and output features (Linear)")
        }
        self.init(wrapping: f, path: path, feedforward: feedforward, initWeights: initWeights, using: &rng)
    }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let l = try ctx[scale].reshaped([-1])                                               // [in] or [out]
        return .affine(isFeedforward ? AffineUpdate(inputScale: l) : AffineUpdate(outputScale: l))
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { mergedScale != nil }

    /// Multiplies the scale into the base `Linear`'s weight (and, for output scaling, its bias).
    public func merge() throws {
        guard mergedScale == nil else { return }
        let linear = try requireLinearBase(for: "merging IA3")
        let l = scale.value.contiguous()
        if let zero = l.scalars.firstIndex(of: 0) {
            throw ConfigError("\(path): ia3_l[\(zero)] is 0, so the merge could not be undone; refusing to merge")
        }
        linear.weight.value = try (linear.weight.value * l).contiguous()                 // [out, in] * [out, 1] or [1, in]
        if !isFeedforward, let b = linear.bias { b.value = try (b.value * l.reshaped([-1])).contiguous() }
        mergedScale = l
    }

    /// Divides the merged scale out again.
    public func unmerge() throws {
        guard let l = mergedScale else { return }
        let linear = try requireLinearBase(for: "unmerging IA3")
        linear.weight.value = try (linear.weight.value / l).contiguous()
        if !isFeedforward, let b = linear.bias { b.value = try (b.value / l.reshaped([-1])).contiguous() }
        mergedScale = nil
    }
}
