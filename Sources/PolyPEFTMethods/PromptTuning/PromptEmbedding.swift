import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Prompt tuning's and P-tuning's virtual tokens (PEFT's `PromptEmbedding` / `PromptEncoder`), fed to the model
/// through its virtual-token slot (`VirtualTokenHost`).
///
/// ```
/// table: [n P, H]           the saved `prompt_embeddings`: trained directly (prompt tuning), or
///                           head(embedding [n P, H]) with P-tuning's MLP head
/// prompts = table[0 ..< P]  viewed [1, P, H], prepended to every sample's input embeddings
/// ```
/// with `P` virtual tokens, `n = num_transformer_submodules` (2 for seq2seq: PEFT keeps a second block of `P` rows
/// that no forward reads, so its gradient is zero) and `H` the model's width. The same rows serve every sample;
/// gradients sum over the batch.
///
/// The file holds only `prompt_embeddings` (the head's output for P-tuning). A file loads into the direct form
/// (`inference_mode: true`, as PEFT writes it): an MLP cannot be recovered from its output.
public final class PromptEmbedding: Adapter, VirtualTokenSource {
    public let path = ""
    public let virtualTokens: Int
    public let keepsTokenTypes: Bool

    /// The trained table `[n P, H]`, directly or through P-tuning's MLP head.
    let table: PromptTable

    /// A source of `virtualTokens` tokens from `form`, installed in `host`'s virtual-token slot.
    init(virtualTokens: Int, table: PromptTable, keepsTokenTypes: Bool, host: any VirtualTokenHost) throws {
        self.virtualTokens = virtualTokens
        self.table = table
        self.keepsTokenTypes = keepsTokenTypes
        guard host.virtualTokens == nil else {
            throw ConfigError("prompt tuning: the model already has a virtual-token source installed")
        }
        host.virtualTokens = self
        guard host.virtualTokens === self else {
            throw ConfigError("prompt tuning: \(type(of: host)) did not take the virtual tokens (its encoder was replaced)")
        }
    }

    /// The model's virtual-token slot, or an error naming the model.
    static func host(of model: Module) throws -> any VirtualTokenHost {
        guard let host = model as? any VirtualTokenHost else {
            throw ConfigError("prompt tuning needs a model that takes virtual tokens (BertModel, BertForSequenceClassification, "
                + "T5ForConditionalGeneration), not \(type(of: model))")
        }
        return host
    }

    /// `sizes` with PEFT's defaults from `model` filled in.
    static func resolvedSizes(_ sizes: PromptLearningSizes, for model: Module, taskType: String?) throws -> PromptLearningSizes {
        let host = try host(of: model)
        return sizes.resolved(tokenDim: host.embeddingDim, geometry: (model as? any KeyValuePrefixHost)?.prefixGeometry,
                              taskType: taskType)
    }

    /// `(P, n P, H)` of resolved sizes, checked against the model: the width must be the model's, and the virtual
    /// tokens must leave room in a model with absolute positions.
    static func checkedSizes(_ sizes: PromptLearningSizes, host: any VirtualTokenHost, model: Module) throws -> (Int, Int, Int) {
        guard let p = sizes.numVirtualTokens, let h = sizes.tokenDim, let n = sizes.numTransformerSubmodules else {
            throw ConfigError("prompt tuning: num_virtual_tokens, token_dim and num_transformer_submodules must be known "
                + "(resolve the config for the model first)")
        }
        guard h == host.embeddingDim else {
            throw ConfigError("prompt tuning: token_dim \(h) is not the model's embedding width \(host.embeddingDim)")
        }
        if let limit = (model as? any KeyValuePrefixHost)?.prefixGeometry.positionLimit, p >= limit {
            throw ConfigError("prompt tuning: \(p) virtual tokens leave no room in the model's \(limit) positions")
        }
        return (p, p * n, h)
    }

    /// Rows of the model's input embeddings for `ids`, repeated or cut to `count` rows (PEFT's text initialisation):
    /// `[count, H]`.
    static func embeddings(of ids: [Int], count: Int, host: any VirtualTokenHost) throws -> Tensor {
        let table = try host.inputEmbeddingTable                                             // [vocab, H]
        if let bad = ids.first(where: { $0 < 0 || $0 >= table.shape[0] }) {
            throw ConfigError("prompt tuning: token id \(bad) is outside the model's vocabulary of \(table.shape[0])")
        }
        let rows = (0..<count).map { ids[$0 % ids.count] }
        return try table.indexSelect(axis: 0, rows).contiguous()
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] { table.parameters }

    /// Saved without PEFT's `base_model.model.` prefix.
    public var savedKeyPrefix: String { "" }

    public func savedTensors() throws -> [(name: String, tensor: Tensor)] { try table.saved() }

    public func loadSavedTensors(_ tensors: [String: Tensor]) throws { try table.load(tensors) }

    public func virtualTokens(batch: Int, _ ctx: Context) throws -> Variable? {
        guard ctx.adaptersEnabled else { return nil }
        let prompts = try table.value(ctx).sliced(axis: 0, start: 0, end: virtualTokens)            // [P, H]
        ctx.recorder?.record("prompt.tokens", prompts.value)
        return try prompts.unsqueezed(0)                                                     // [1, P, H]
    }
}
