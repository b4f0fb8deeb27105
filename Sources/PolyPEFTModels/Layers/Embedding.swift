import PolyPEFTCore
import PolyPEFTIO

/// `nn.Embedding`: rows of `weight [vocab, D]` selected by integer ids.
public final class Embedding: Module {
    public let weight: Parameter   // [vocab, D]

    public init(_ count: Int, _ dimension: Int, using rng: inout some RandomNumberGenerator) {
        weight = Parameter(Tensor.normal([count, dimension], using: &rng))
        super.init()
        addParameter("weight", weight)
    }

    /// An embedding reading an existing (possibly shared) table `[vocab, D]`, e.g. tied input embeddings.
    public init(weight: Parameter) {
        self.weight = weight
        super.init()
        addParameter("weight", weight)
    }

    /// ids (row-major, of shape `shape`) -> [shape..., D]. Out-of-range ids throw.
    public func forward(ids: [Int], shape: [Int], _ ctx: Context) throws -> Variable {
        guard Tensor.elementCount(shape) == ids.count else {
            throw TensorError("embedding", "\(ids.count) ids do not fill shape \(fmt(shape))")
        }
        let rows = try ctx[weight].indexSelect(axis: 0, ids)
        return try rows.reshaped(shape + [weight.value.shape[1]])
    }
}
