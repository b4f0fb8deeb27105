import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Prefix tuning's learned keys and values (PEFT's `PrefixEncoder`, laid out as `PeftModel.get_prompt` does), fed
/// to the model through its key/value prefix slot (`KeyValuePrefixHost`).
///
/// ```
/// table: [P, 2 L H]       the saved `prompt_embeddings`: trained directly, or with prefix_projection
///                         transform(embedding) = Linear(E, 2 L H)(tanh(Linear(H, E)(embedding [P, H])))
/// slices = table viewed [P, 2L, heads, hd], permuted to [2L, heads, P, hd]
/// layer i of the model: key = slices[k_i], value = slices[k_i + 1],   k_i = (2 n i) mod 2L
/// ```
/// with `P` virtual tokens, `L = num_layers`, `H = token_dim`, `hd = H / heads` and `n = num_transformer_submodules`.
/// For `n = 1` (BERT) layer `i` reads slices `2i, 2i + 1`. For `n = 2` (T5, `SEQ_2_SEQ_LM`) PEFT 0.21.2 doubles the
/// slices and hands out groups of four of which the decoder's self-attention takes the first two: block `i` reads
/// `4i mod 2L` and `4i mod 2L + 1` (with L = 2 both blocks read slices 0 and 1; the others get no gradient). The
/// same rows serve every sample; gradients sum over the batch.
///
/// The file holds only `prompt_embeddings` (the projected table, with a projection). A file loads into the direct
/// form (`inference_mode: true`, as PEFT writes it): the projection MLP cannot be recovered from its output.
public final class PrefixEncoder: Adapter, KeyValuePrefixSource {
    public let path = ""
    public let virtualTokens: Int
    /// PEFT's `num_layers` (`L`): the table holds `2L` slices.
    public let layers: Int
    public let heads: Int
    public let headDim: Int
    /// The slice of each prefixed attention layer's key (its value is the next slice).
    public let keySlices: [Int]
    public let keepsTokenTypes: Bool

    /// The trained table (`[P, 2 L H]`), directly or through the projection (`transform`).
    let table: PromptTable

    /// Builds the encoder for `config` (sizes resolved) and installs it in `model`'s key/value prefix slot.
    public init(config: PrefixTuningConfig, model: Module, using rng: inout some RandomNumberGenerator) throws {
        let host = try PrefixEncoder.host(of: model)
        let g = host.prefixGeometry
        guard let p = config.numVirtualTokens, let l = config.numLayers, let h = config.tokenDim,
              let heads = config.numAttentionHeads, let n = config.numTransformerSubmodules else {
            throw ConfigError("prefix tuning: num_virtual_tokens, num_layers, token_dim, num_attention_heads and "
                + "num_transformer_submodules must be known (resolve the config for the model first)")
        }
        guard h == g.tokenDim, heads == g.heads, h % heads == 0, h / heads == g.headDim else {
            throw ConfigError("prefix tuning: token_dim \(h) with \(heads) heads (head size \(h / Swift.max(heads, 1))) does not "
                + "fit the model's attention (\(g.heads) heads of \(g.headDim), hidden size \(g.tokenDim))")
        }
        guard g.layers <= l else {
            throw ConfigError("prefix tuning: the model has \(g.layers) attention layers taking a prefix, num_layers is \(l)")
        }
        if let limit = g.positionLimit, p >= limit {
            throw ConfigError("prefix tuning: \(p) virtual tokens leave no room in the model's \(limit) positions")
        }
        guard host.keyValuePrefix == nil else {
            throw ConfigError("prefix tuning: the model already has a key/value prefix source installed")
        }
        virtualTokens = p
        layers = l
        self.heads = heads
        headDim = h / heads
        keySlices = (0..<g.layers).map { (2 * n * $0) % (2 * l) }
        keepsTokenTypes = config.keepsTokenTypes
        let zero = config.initWeights == "zero", width = 2 * l * h
        if config.prefixProjection && !config.inferenceMode {
            let e = config.encoderHiddenSize ?? h
            let out = Linear(e, width, using: &rng)
            if zero {
                out.weight.value = Tensor.zeros([width, e])
                out.bias?.value = Tensor.zeros([width])
            }
            table = PromptTable(form: .encoded(embedding: Parameter(Tensor.normal([p, h], using: &rng)),
                                               head: Sequential([Linear(h, e, using: &rng), Activation(.tanh), out]),
                                               headName: "transform"), method: "prefix tuning")
        } else {
            table = PromptTable(form: .direct(table: Parameter(zero ? Tensor.zeros([p, width]) : Tensor.normal([p, width], using: &rng))),
                                method: "prefix tuning")
        }
        host.keyValuePrefix = self
        guard host.keyValuePrefix === self else {
            throw ConfigError("prefix tuning: \(type(of: model)) did not take the key/value prefix (a sublayer that "
                + "holds its attention was replaced)")
        }
    }

    /// The model's key/value prefix slot, or an error naming the model.
    static func host(of model: Module) throws -> any KeyValuePrefixHost {
        guard let host = model as? any KeyValuePrefixHost else {
            throw ConfigError("prefix tuning needs a model whose attention takes key/value prefixes (BertModel, "
                + "BertForSequenceClassification, T5ForConditionalGeneration), not \(type(of: model))")
        }
        return host
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] { table.parameters }

    /// Saved without PEFT's `base_model.model.` prefix.
    public var savedKeyPrefix: String { "" }

    public func savedTensors() throws -> [(name: String, tensor: Tensor)] { try table.saved() }

    public func loadSavedTensors(_ tensors: [String: Tensor]) throws { try table.load(tensors) }

    public func prefixes(batch: Int, _ ctx: Context) throws -> [KeyValuePrefix]? {
        guard ctx.adaptersEnabled else { return nil }
        let slices = try table.value(ctx).reshaped([virtualTokens, 2 * layers, heads, headDim]).permuted([1, 2, 0, 3])   // [2L, heads, P, hd]
        return try keySlices.enumerated().map { i, k in
            let key = try slices.sliced(axis: 0, start: k, end: k + 1)                 // [1, heads, P, hd]
            let value = try slices.sliced(axis: 0, start: k + 1, end: k + 2)
            if let r = ctx.recorder {
                let full = [batch, heads, virtualTokens, headDim]
                r.record("prefix.\(i).key", try key.value.expanded(to: full).contiguous())
                r.record("prefix.\(i).value", try value.value.expanded(to: full).contiguous())
            }
            return KeyValuePrefix(key: key, value: value)
        }
    }
}
