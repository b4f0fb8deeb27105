import PolyPEFTCore
import PolyPEFTIO

/// Where a sublayer's output meets the residual stream: the place bottleneck adapters (and the unions built on them)
/// take over. The adapters library calls these places by `location`:
///
/// ```
/// mh_adapter       after self-attention       BERT attention.output, T5 layer.0
/// cross_adapter    after cross-attention      T5 decoder layer.1
/// output_adapter   after the feed-forward     BERT output, T5 last layer
/// ```
public enum SublayerLocation: String, Sendable, CaseIterable {
    case attention = "mh_adapter"
    case crossAttention = "cross_adapter"
    case feedForward = "output_adapter"
}

/// What runs in a residual slot instead of the model's own join:
///
/// ```
/// default, post-norm (BERT):  out = norm(y + h)
/// default, pre-norm (T5):     out = y + h                      (norm = nil)
/// ```
/// `y` is the sublayer's output after its dropout, `h` the residual input, `norm` the host's layer norm (nil where
/// the norm comes before the sublayer).
public protocol ResidualJoin: Module {
    func join(_ y: Variable, residual h: Variable, norm: (any Layer)?, _ ctx: Context) throws -> Variable
}

/// A sublayer with a residual slot: a child named `slotName` that conforms to `ResidualJoin`, run in place of the
/// default join. The slot is a child, so its parameters have dotted names under the host
/// (`encoder.layer.0.output.adapters.…`), as in the adapters library.
public protocol ResidualSlotHost: Module {
    var location: SublayerLocation { get }
    /// The width of the residual stream at the slot (`y`, `h` and the output are `[..., hiddenSize]`).
    var hiddenSize: Int { get }
}

extension ResidualSlotHost {
    /// The child name of the slot.
    public static var slotName: String { "adapters" }

    /// The join in the slot, if any.
    public var residualJoin: (any ResidualJoin)? {
        get throws { child(Self.slotName) == nil ? nil : try child(Self.slotName, as: (any ResidualJoin).self) }
    }

    /// Fills the empty slot with `join`; a filled slot is an error (a union of methods fills it with one module).
    public func install(_ join: any ResidualJoin) throws {
        guard child(Self.slotName) == nil else {
            throw ModuleError("\(type(of: self)) at \(location.rawValue): the residual slot is already filled")
        }
        addChild(Self.slotName, join)
    }

    /// `join(y, h, norm)` through the slot, or the default `norm(y + h)` / `y + h` (also when the context disables
    /// adapters).
    func joined(_ y: Variable, residual h: Variable, norm: (any Layer)?, _ ctx: Context) throws -> Variable {
        if ctx.adaptersEnabled, let j = try residualJoin { return try j.join(y, residual: h, norm: norm, ctx) }
        let sum = try y + h
        return try norm.map { try $0.forward(sum, ctx) } ?? sum
    }
}
