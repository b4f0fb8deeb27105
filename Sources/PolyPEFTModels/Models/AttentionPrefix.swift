import PolyPEFTCore
import PolyPEFTIO

/// What fills an attention layer's prefix slot (the adapters library's prefix tuning, `AttentionPrefixHost`): keys
/// and values of `P` positions put before the layer's own, computed per call from the attention's input (so that a
/// gate can read it):
///
/// ```
/// x:            [B, Tq, H]                 the attention's input (query side; T5: after its layer norm)
/// key, value:   [B or 1, heads, P, d]      the prefix
/// K = cat(key, K_layer) along the sequence // [B, heads, P + Tk, d]; V likewise
/// mask = cat(0 (visible), mask)            // P visible positions in front of every query
/// ```
/// Unlike PEFT's prefix tuning (`KeyValuePrefixSource`), positions are not shifted: the sequence keeps its own
/// positions (BERT) and T5's relative bias treats the prefix as `P` key positions before the sequence's.
public protocol AttentionPrefix: Module {
    /// The prefix for this call, or nil when the slot is off for it. Hosts do not ask while the context disables
    /// adapters.
    func prefix(for x: Variable, _ ctx: Context) throws -> KeyValuePrefix?
}

/// An attention layer with a prefix slot: a child named `prefixSlotName` conforming to `AttentionPrefix` (BERT's
/// `attention.self`, T5's `SelfAttention` and `EncDecAttention`). The slot is a child, so its parameters have dotted
/// names under the attention (`attention.self.prefix_tuning.…`), as in the adapters library.
public protocol AttentionPrefixHost: Module {
    /// The width of the attention's input `x` (`[B, Tq, inputSize]`).
    var inputSize: Int { get }
    /// Heads of the keys and values (`[B, heads, T, headDim]`).
    var keyValueHeads: Int { get }
    var keyValueHeadDim: Int { get }
}

extension AttentionPrefixHost {
    /// The child name of the slot.
    public static var prefixSlotName: String { "prefix_tuning" }

    /// The module in the slot, if any.
    public var attentionPrefix: (any AttentionPrefix)? {
        get throws { child(Self.prefixSlotName) == nil ? nil : try child(Self.prefixSlotName, as: (any AttentionPrefix).self) }
    }

    /// Fills the empty slot; a filled slot is an error.
    public func installPrefix(_ prefix: any AttentionPrefix) throws {
        guard child(Self.prefixSlotName) == nil else {
            throw ModuleError("\(type(of: self)): the attention prefix slot is already filled")
        }
        addChild(Self.prefixSlotName, prefix)
    }

    /// `key`, `value` (`[B, heads, Tk, d]`) and the additive `mask` (`[B or 1, 1, Tq or 1, Tk]`) with the slot's
    /// prefix in front, and the prefix length `P` (0 and the inputs unchanged without one). `x` is the attention's
    /// input, `name` names the layer in errors.
    func prefixed(key: Variable, value: Variable, mask: Tensor?, input x: Variable, name: String,
                  _ ctx: Context) throws -> (key: Variable, value: Variable, mask: Tensor?, length: Int) {
        guard ctx.adaptersEnabled, let slot = try attentionPrefix, let p = try slot.prefix(for: x, ctx) else {
            return (key, value, mask, 0)
        }
        let (pk, pv) = try p.expanded(batch: key.shape[0], heads: keyValueHeads, headDim: keyValueHeadDim, layer: name)
        let n = p.length
        var m = mask
        if let mask {
            var shape = mask.shape
            shape[shape.count - 1] = n
            m = try Tensor.concatenate([Tensor.zeros(shape), mask], axis: mask.rank - 1)
        }
        return (try Variable.concatenate([pk, key], axis: 2), try Variable.concatenate([pv, value], axis: 2), m, n)
    }
}
