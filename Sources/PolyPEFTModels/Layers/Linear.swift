import PolyPEFTCore
import PolyPEFTIO

/// `nn.Linear`: `y = x W^T + b` with the weight stored `[out, in]` as PyTorch stores it.
public final class Linear: Module, Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter           // [out, in]
    public let bias: Parameter?            // [out]

    /// PyTorch's default initialisation: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, using rng: inout some RandomNumberGenerator) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(Tensor.kaimingUniform([outFeatures, inFeatures], fanIn: inFeatures, using: &rng))
        let bound = 1 / Float(Swift.max(inFeatures, 1)).squareRoot()
        self.bias = bias ? Parameter(Tensor.uniform([outFeatures], low: -bound, high: bound, using: &rng)) : nil
        super.init()
        addParameter("weight", weight)
        if let b = self.bias { addParameter("bias", b) }
    }

    /// A layer with the given weight `[out, in]` and optional bias `[out]`.
    public init(weight: Tensor, bias: Tensor?) throws {
        guard weight.rank == 2 else { throw ModuleError("Linear: weight must be [out, in], got \(fmt(weight.shape))") }
        if let bias, bias.shape != [weight.shape[0]] {
            throw ModuleError("Linear: bias \(fmt(bias.shape)) does not fit weight \(fmt(weight.shape))")
        }
        inFeatures = weight.shape[1]
        outFeatures = weight.shape[0]
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
        super.init()
        addParameter("weight", self.weight)
        if let b = self.bias { addParameter("bias", b) }
    }

    /// A bias-free layer over an existing (possibly shared) weight `[out, in]`, e.g. a head tied to embeddings.
    public init(sharing weight: Parameter) {
        precondition(weight.value.rank == 2, "Linear(sharing:): weight must be [out, in]")
        inFeatures = weight.value.shape[1]
        outFeatures = weight.value.shape[0]
        self.weight = weight
        self.bias = nil
        super.init()
        addParameter("weight", weight)
    }

    /// x: [..., in] -> [..., out]
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        try x.linear(weight: ctx[weight], bias: bias.map { ctx[$0] })
    }
}

/// A layer that maps `[..., inFeatures]` to `[..., outFeatures]` (a `Linear`, or an adapter around one): what
/// methods that scale inputs or outputs (IA3) can wrap.
public protocol FeatureLayer: Layer {
    var inFeatures: Int { get }
    var outFeatures: Int { get }
}

extension Linear: FeatureLayer {}
