import PolyPEFTCore
import PolyPEFTIO

/// Supplies virtual token embeddings that a model prepends to its input sequence (prompt tuning, P-tuning). The
/// model asks once per forward.
///
/// ```
/// e = cat(virtual, word_embeddings(ids)) along the sequence      // [B, P + T, H]
/// mask = cat(ones(B, P), mask);  token types = cat(zeros(B, P), types);  positions 0 ..< P + T
/// ```
/// as PEFT feeds `inputs_embeds` to the base model. The output then has `P + T` positions.
public protocol VirtualTokenSource: AnyObject {
    /// `[B or 1, P, H]` for a batch of `batch`, or nil when the source is off for this context. Hosts do not ask
    /// while the context disables adapters.
    func virtualTokens(batch: Int, _ ctx: Context) throws -> Variable?
    /// Whether the model keeps its token types (extended with `P` zeros) while tokens are prepended. PEFT's prompt
    /// learning keeps them for SEQ_CLS, TOKEN_CLS and QUESTION_ANS and drops them otherwise (type 0 everywhere).
    var keepsTokenTypes: Bool { get }
}

/// A model that can prepend virtual tokens to its (encoder) input.
public protocol VirtualTokenHost: AnyObject {
    /// The width of the input embeddings (`H`).
    var embeddingDim: Int { get }
    /// The input (word) embedding table `[vocab, H]`, from which prompt tuning can start its virtual tokens.
    var inputEmbeddingTable: Tensor { get throws }
    /// The installed source, or nil.
    var virtualTokens: (any VirtualTokenSource)? { get set }
}

/// Prepending virtual tokens to embedded inputs and extending masks and token types to match.
enum VirtualTokens {
    /// `cat(virtual, embedded)` along the sequence with the virtual part expanded to the batch; `[B, P + T, H]`.
    static func prepend(_ virtual: Variable, to embedded: Variable, _ name: String) throws -> Variable {
        let (b, h) = (embedded.shape[0], embedded.shape[2])
        let vs = virtual.shape
        guard vs.count == 3, vs[0] == 1 || vs[0] == b, vs[2] == h else {
            throw ModelError("\(name): virtual tokens \(fmt(vs)) do not fit [\(b) or 1, P, \(h)]")
        }
        let full = vs[0] == b ? virtual : try virtual.expanded(to: [b, vs[1], h])
        return try Variable.concatenate([full, embedded], axis: 1)
    }

    /// A 0/1 mask `[B, T]` with `p` leading ones (nil stays nil: everything visible).
    static func extend(mask: [[Int]]?, by p: Int) -> [[Int]]? {
        mask.map { $0.map { [Int](repeating: 1, count: p) + $0 } }
    }
}
