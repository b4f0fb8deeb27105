import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// BEFT around a layer (PEFT's `beft.Linear`): a learned bias added to the layer's output.
///
/// ```
/// beft_bias: [1, out]     y = base(x) + beft_bias              (broadcast over the rows)
/// merged (Linear):        bias' = bias + beft_bias             (a base without a bias cannot merge)
/// ```
/// The update is a shift (`AdapterUpdate.affine`): one elementwise pass, nothing after merging.
public final class BeftLayer: Module, AdapterLayer, FeatureLayer {
    public let base: any Layer
    public let path: String
    public let bias: Parameter
    public let inFeatures: Int
    public let outFeatures: Int
    /// The bias added to the base's at merge time (subtracted again to unmerge).
    private var mergedBias: Tensor?

    public var mergedUpdate: String? { mergedBias == nil ? nil : "the BEFT bias" }

    /// PEFT's initialisation: `beft_bias` = 0 when `initWeights`, else N(0, 1).
    public init(wrapping base: any FeatureLayer, path: String, initWeights: Bool = true, using rng: inout some RandomNumberGenerator) {
        self.base = base
        self.path = path
        inFeatures = base.inFeatures
        outFeatures = base.outFeatures
        bias = Parameter(initWeights ? Tensor.zeros([1, base.outFeatures]) : Tensor.normal([1, base.outFeatures], using: &rng))
        super.init()
        addChild("base_layer", base)
        addParameter("beft_bias", bias)
    }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        .affine(AffineUpdate(shift: try ctx[bias].reshaped([-1])))                           // [out]
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { mergedBias != nil }

    /// Adds the bias into the base `Linear`'s bias (PEFT refuses a base without one, and so does this).
    public func merge() throws {
        guard mergedBias == nil else { return }
        let linear = try requireLinearBase(for: "merging BEFT")
        guard let b = linear.bias else { throw ConfigError("\(path): the base layer has no bias, so the BEFT bias cannot be merged") }
        let add = try bias.value.reshaped([-1]).contiguous()
        b.value = try (b.value + add).contiguous()
        mergedBias = add
    }

    public func unmerge() throws {
        guard let add = mergedBias else { return }
        let linear = try requireLinearBase(for: "unmerging BEFT")
        guard let b = linear.bias else { return }
        b.value = try (b.value - add).contiguous()
        mergedBias = nil
    }
}
