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

    /// The trained tensors: the table itself, or the projection's embedding and MLP.
    enum Form {
        case direct(table: Parameter)                                   // [P, 2 L H]
        case projected(embedding: Parameter, transform: Sequential)    // [P, H]; H -> E -> 2 L H
    }
    let form: Form

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
            form = .projected(embedding: Parameter(Tensor.normal([p, h], using: &rng)),
                              transform: Sequential([Linear(h, e, using: &rng), Activation(.tanh), out]))
        } else {
            form = .direct(table: Parameter(zero ? Tensor.zeros([p, width]) : Tensor.normal([p, width], using: &rng)))
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

    /// Direct form: `prompt_embeddings`; projected: PEFT's names inside its prompt encoder (`embedding.weight`,
    /// `transform.0.weight`, ...).
    public func adapterParameters() -> [(name: String, parameter: Parameter)] {
        switch form {
        case .direct(let table): return [("prompt_embeddings", table)]
        case .projected(let embedding, let transform): return [("embedding.weight", embedding)] + transform.namedParameters(prefix: "transform")
        }
    }

    /// Saved without PEFT's `base_model.model.` prefix.
    public var savedKeyPrefix: String { "" }

    public func savedTensors() throws -> [(name: String, tensor: Tensor)] {
        [("prompt_embeddings", try table(Context(mode: .eval, recordsGradients: false)).value)]
    }

    /// Takes `prompt_embeddings` as the table. A projected encoder (a config with `prefix_projection` and
    /// `inference_mode: false`) cannot take it: the MLP cannot be recovered from its output, and PEFT refuses too.
    public func loadSavedTensors(_ tensors: [String: Tensor]) throws {
        guard let t = tensors["prompt_embeddings"] else { return }
        guard case .direct(let table) = form else {
            throw ConfigError("prefix tuning: a saved prompt_embeddings table cannot be loaded into a prefix_projection "
                + "encoder in training mode (inference_mode false); load it with inference_mode true to use or train the table")
        }
        table.value = t.contiguous()
    }

    /// The table `[P, 2 L H]` as an input of this forward.
    func table(_ ctx: Context) throws -> Variable {
        switch form {
        case .direct(let table): return ctx[table]
        case .projected(let embedding, let transform): return try transform.forward(ctx[embedding], ctx)
        }
    }

    public func prefixes(batch: Int, _ ctx: Context) throws -> [KeyValuePrefix]? {
        guard ctx.adaptersEnabled else { return nil }
        let slices = try table(ctx).reshaped([virtualTokens, 2 * layers, heads, headDim]).permuted([1, 2, 0, 3])   // [2L, heads, P, hd]
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
