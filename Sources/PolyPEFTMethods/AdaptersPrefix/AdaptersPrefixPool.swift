import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// One location's prefix generator (the adapters library's `PrefixTuning`, or `FlatPrefixTuning` with `flat`), for
/// the `L` layers that take a prefix there, `heads` x `d` wide (`n = heads d`), with input width `H`:
///
/// ```
/// E = wte                                         [P, H]
/// KV = act(E W0^T + b0) W2^T + b2                 [P, L 2 n]     W0 [bottleneck, H], W2 [L 2 n, bottleneck]
/// KV = control_trans viewed [P, L 2 n]            (flat)         control_trans [P L 2 n]
/// layer l:  key = KV[:, 2l n ..< (2l+1) n],  value = KV[:, (2l+1) n ..< (2l+2) n]    each -> [1, heads, P, d]
/// ```
/// (the library views `KV` as `[P, 2L, heads, d]` and splits the `2L` axis in pairs). A layer's call computes only
/// its own rows of `W2` (the first projection is recomputed per layer: `P H bottleneck` multiply-adds, small beside
/// the layer). Dropout, in training, acts on the prefix expanded to the batch, as the library's does.
final class AdaptersPrefixGenerator {
    let location: AdaptersPrefixConfig.Location
    let layers: Int
    let heads: Int
    let headDim: Int
    let length: Int
    let dropout: Float
    let activation: Activation?
    /// `wte` [P, H], `control_trans.0` (W0, b0), `control_trans.2` (W2, b2); nil when flat.
    let table: Parameter?
    let first: Linear?
    let second: Linear?
    /// `control_trans` [P L 2 n] when flat.
    let flat: Parameter?

    /// PyTorch's initialisation: `wte` ~ N(0, 1), the linear layers U(-1/sqrt(in), 1/sqrt(in)); flat ~ N(0, 1).
    init(location: AdaptersPrefixConfig.Location, layers: Int, inputSize: Int, heads: Int, headDim: Int,
         config: AdaptersPrefixConfig, using rng: inout some RandomNumberGenerator) {
        self.location = location
        self.layers = layers
        self.heads = heads
        self.headDim = headDim
        length = config.prefixLength
        dropout = Float(config.dropout)
        let width = layers * 2 * heads * headDim
        if config.flat {
            flat = Parameter(Tensor.normal([length * width], using: &rng))
            (table, first, second, activation) = (nil, nil, nil, nil)
        } else {
            flat = nil
            table = Parameter(Tensor.normal([length, inputSize], using: &rng))
            first = Linear(inputSize, config.bottleneckSize, using: &rng)
            second = Linear(config.bottleneckSize, width, using: &rng)
            activation = config.activation.map { Activation($0) }
        }
    }

    /// The parameters by the library's names within the location (`wte.weight`, `control_trans.0.weight`, ... or
    /// `control_trans`).
    var parameters: [(name: String, parameter: Parameter)] {
        if let flat { return [("control_trans", flat)] }
        guard let table, let first, let second else { return [] }
        return [("wte.weight", table), ("control_trans.0.weight", first.weight), ("control_trans.0.bias", first.bias!),
                ("control_trans.2.weight", second.weight), ("control_trans.2.bias", second.bias!)]
    }

    /// Layer `position`'s (0-based among this location's layers) key and value, `[1, heads, P, d]` each (`[B, ...]`
    /// with dropout in training).
    func keyValue(position l: Int, batch: Int, _ ctx: Context) throws -> KeyValuePrefix {
        let n = heads * headDim
        let rows: Variable                                                          // [P, 2n]
        if let flat {
            rows = try ctx[flat].reshaped([length, layers * 2 * n]).sliced(axis: 1, start: 2 * l * n, end: (2 * l + 2) * n)
        } else if let table, let first, let second, let activation {
            let h = try activation.forward(try first.forward(ctx[table], ctx), ctx)                     // [P, bottleneck]
            let w = try ctx[second.weight].sliced(axis: 0, start: 2 * l * n, end: (2 * l + 2) * n)     // [2n, bottleneck]
            let b = try ctx[second.bias!].sliced(axis: 0, start: 2 * l * n, end: (2 * l + 2) * n)      // [2n]
            rows = try h.matmul(w.permuted([1, 0])) + b
        } else {
            throw ConfigError("prefix generator at \(location.key) has no parameters")
        }
        var kv = try rows.reshaped([1, length, 2, heads, headDim]).permuted([2, 0, 3, 1, 4])          // [2, 1, heads, P, d]
        if ctx.isTraining && dropout > 0 {
            kv = try kv.expanded(to: [2, batch, heads, length, headDim]).dropout(p: dropout, using: &ctx.rng)
        }
        return KeyValuePrefix(key: try kv.sliced(axis: 0, start: 0, end: 1).squeezed(0),
                              value: try kv.sliced(axis: 0, start: 1, end: 2).squeezed(0))
    }
}

/// The model's prefix generators, one per location (the adapters library's `PrefixTuningPool` for one adapter): an
/// adapter of its own, at the base model's `prefix_tuning`, whose parameters the layers' slots read
/// (`AdaptersPrefixSlot`). Saved names are `<location>_prefix.<name>` (`self_prefix.wte.weight`).
public final class AdaptersPrefixPool: Adapter {
    public let path: String
    let generators: [AdaptersPrefixGenerator]
    /// Every attention with a prefix slot in the model, taken or not (each holds the library's pool under its own
    /// keys too).
    let hostPaths: [String]

    init(path: String, generators: [AdaptersPrefixGenerator], hostPaths: [String]) {
        self.path = path
        self.generators = generators
        self.hostPaths = hostPaths
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] {
        generators.flatMap { g in g.parameters.map { (g.location.key + "." + $0.name, $0.parameter) } }
    }

    func generator(at location: AdaptersPrefixConfig.Location) -> AdaptersPrefixGenerator? {
        generators.first { $0.location == location }
    }
}
