import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The trained table of a prompt-learning method, saved as PEFT's single `prompt_embeddings` tensor: trained
/// directly, or as the output of a head over an embedding (prefix tuning's projection, P-tuning's MLP).
///
/// ```
/// direct:   table = prompt_embeddings                          trained as is
/// encoded:  table = head(embedding)                            embedding.weight, <headName>.0.weight, ... train
/// ```
/// The file holds the table either way; it loads into the direct form only (`inference_mode: true`, as PEFT writes
/// it), since a head cannot be recovered from its output.
struct PromptTable {
    enum Form {
        case direct(table: Parameter)
        case encoded(embedding: Parameter, head: Sequential, headName: String)
    }
    let form: Form
    /// Names the method in errors (`"P-tuning"`).
    let method: String

    /// Direct form: `prompt_embeddings`; encoded: PEFT's names inside its prompt encoder (`embedding.weight`,
    /// `<headName>.0.weight`, ...).
    var parameters: [(name: String, parameter: Parameter)] {
        switch form {
        case .direct(let table): return [("prompt_embeddings", table)]
        case .encoded(let embedding, let head, let name): return [("embedding.weight", embedding)] + head.namedParameters(prefix: name)
        }
    }

    /// The table as an input of this forward.
    func value(_ ctx: Context) throws -> Variable {
        switch form {
        case .direct(let table): return ctx[table]
        case .encoded(let embedding, let head, _): return try head.forward(ctx[embedding], ctx)
        }
    }

    /// What the file holds.
    func saved() throws -> [(name: String, tensor: Tensor)] {
        [("prompt_embeddings", try value(Context(mode: .eval, recordsGradients: false)).value)]
    }

    /// Takes a saved `prompt_embeddings` as the table; an encoded form refuses it, as PEFT does.
    func load(_ tensors: [String: Tensor]) throws {
        guard let t = tensors["prompt_embeddings"] else { return }
        guard case .direct(let table) = form else {
            throw ConfigError("\(method): a saved prompt_embeddings table cannot be loaded into the encoder that computes it "
                + "in training (inference_mode false); load it with inference_mode true to use or train the table")
        }
        table.value = t.contiguous()
    }
}
