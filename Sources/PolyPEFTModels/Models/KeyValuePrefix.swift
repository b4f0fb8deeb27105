import PolyPEFTCore
import PolyPEFTIO

/// Keys and values prepended to one self-attention layer's own (what prefix tuning feeds a model):
///
/// ```
/// key, value: [B or 1, heads, P, headDim]         (a batch of 1 is broadcast to every sample)
/// K = cat(key, x W_k^T + b_k) along the sequence   // [B, heads, P + T, headDim]; V likewise
/// ```
/// The prefix positions are visible to every query; they do not pass through the key and value projections.
public struct KeyValuePrefix {
    public var key: Variable
    public var value: Variable

    public init(key: Variable, value: Variable) {
        self.key = key
        self.value = value
    }

    /// Prefix positions `P`.
    public var length: Int { key.shape[2] }

    /// Checks the shapes against a layer of `heads` x `headDim` and a batch of `batch`; returns both parts expanded
    /// to the batch (`[B, heads, P, headDim]`). `layer` names the attention layer in errors.
    func expanded(batch: Int, heads: Int, headDim: Int, layer: String) throws -> (key: Variable, value: Variable) {
        let ks = key.shape, vs = value.shape
        guard ks.count == 4, ks == vs, ks[0] == 1 || ks[0] == batch, ks[1] == heads, ks[3] == headDim else {
            throw ModelError("\(layer): key/value prefix \(fmt(ks)) / \(fmt(vs)) does not fit [\(batch) or 1, \(heads), P, \(headDim)]")
        }
        guard ks[0] != batch else { return (key, value) }
        let full = [batch, heads, ks[2], headDim]
        return (try key.expanded(to: full), try value.expanded(to: full))
    }
}

/// Where a model's self-attention layers take key/value prefixes, and their shape.
public struct PrefixGeometry: Sendable, Equatable {
    /// Attention layers that take a prefix, in order (BERT: the encoder layers; T5: the decoder blocks'
    /// self-attention).
    public var layers: Int
    public var heads: Int
    public var headDim: Int
    /// The model's hidden size (PEFT's `token_dim`).
    public var tokenDim: Int
    /// The config's `num_hidden_layers` (T5: the encoder's depth, even though the decoder takes the prefixes): PEFT's
    /// default `num_layers`.
    public var hiddenLayers: Int
    /// Absolute positions the model has (BERT's `max_position_embeddings`: prefix and sequence share them), or nil
    /// for relative positions (T5).
    public var positionLimit: Int?

    public init(layers: Int, heads: Int, headDim: Int, tokenDim: Int, hiddenLayers: Int? = nil, positionLimit: Int? = nil) {
        self.layers = layers
        self.heads = heads
        self.headDim = headDim
        self.tokenDim = tokenDim
        self.hiddenLayers = hiddenLayers ?? layers
        self.positionLimit = positionLimit
    }
}

/// Supplies the per-layer key/value prefixes of one forward (prefix tuning's encoder). The model asks once per
/// forward, before its first layer.
public protocol KeyValuePrefixSource: AnyObject {
    /// One prefix per layer of the model's `PrefixGeometry`, for a batch of `batch` samples; nil when the source is
    /// off for this context, so the model runs as if it had none. Hosts do not ask while the context disables
    /// adapters.
    func prefixes(batch: Int, _ ctx: Context) throws -> [KeyValuePrefix]?
    /// Whether the model keeps its token types while prefixed. PEFT's prefix tuning drops `token_type_ids` (BERT then
    /// reads type 0 everywhere).
    var keepsTokenTypes: Bool { get }
}

/// A model whose self-attention layers take key/value prefixes. The model knows no method: it calls the installed
/// source and threads each layer's prefix, extending masks and positions as transformers do for a cache of `P`
/// positions (BERT: absolute positions start at `P`; T5: the decoder's relative position bias and causal mask see
/// the prefix as `P` earlier positions).
public protocol KeyValuePrefixHost: AnyObject {
    var prefixGeometry: PrefixGeometry { get }
    /// The installed source, or nil.
    var keyValuePrefix: (any KeyValuePrefixSource)? { get set }
}
