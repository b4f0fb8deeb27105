import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// What an adapter does to its base layer's output in one call (`AdapterLayer.update`), in the cheapest form the base
/// can take.
public enum AdapterUpdate {
    /// A dense update, the shape of the base output, added to it.
    case dense(Variable)
    /// A routed low-rank update that a base `Linear` fuses into its own matmuls.
    case lowRank(LowRankUpdate)
    /// Scales of the input and output and a shift (IA3, DoRA's magnitude, biases), with an optional fused
    /// low-rank update inside: one elementwise pass, or nothing once merged.
    case affine(AffineUpdate)

    /// The update as a dense value for the input `x` (an affine update has none without its base layer).
    public func dense(for x: Variable) throws -> Variable {
        switch self {
        case .dense(let d): return d
        case .lowRank(let u): return try u.delta(for: x)
        case .affine: throw ConfigError("an affine update has no dense form without its base layer; use the layer's delta")
        }
    }
}

/// An affine change of a layer, around an optional low-rank update:
///
/// ```
/// y = (base(x * inputScale) + lowRank(x) + addend) * outputScale + shift
/// inputScale: [in]     addend: [..., out]     outputScale: [out]     shift: [out]       (each optional)
/// ```
/// The low-rank part reads the unscaled `x` and is fused into a base `Linear`'s matmul as `.lowRank` is.
public struct AffineUpdate {
    public var inputScale: Variable?
    public var lowRank: LowRankUpdate?
    /// A dense term added to the base output before `outputScale` (DoRA's low-rank term under dropout).
    public var addend: Variable?
    public var outputScale: Variable?
    public var shift: Variable?

    public init(inputScale: Variable? = nil, lowRank: LowRankUpdate? = nil, addend: Variable? = nil,
                outputScale: Variable? = nil, shift: Variable? = nil) {
        self.inputScale = inputScale
        self.lowRank = lowRank
        self.addend = addend
        self.outputScale = outputScale
        self.shift = shift
    }

    /// An additive update (`.dense` as `addend`, `.lowRank` as `lowRank`) with scales and a shift around it; an
    /// affine `update` gets the shift and output scale given here where it has none.
    public init(around update: AdapterUpdate, outputScale: Variable? = nil, shift: Variable? = nil) {
        switch update {
        case .dense(let d): self.init(addend: d)
        case .lowRank(let u): self.init(lowRank: u)
        case .affine(let a): self = a
        }
        self.outputScale = self.outputScale ?? outputScale
        self.shift = self.shift ?? shift
    }

    /// The layer's output for `x`; `baseLinear` (the base when it is a `Linear` and fusion is wanted) lets the
    /// low-rank part ride on the base matmul.
    func applied(to base: any Layer, baseLinear: Linear?, _ x: Variable, _ ctx: Context) throws -> Variable {
        var y: Variable
        if let u = lowRank, inputScale == nil, let linear = baseLinear {
            y = try u.applied(to: linear, x, ctx)
        } else {
            y = try base.forward(try inputScale.map { try x * $0 } ?? x, ctx)
            if let u = lowRank { y = try y + (try u.delta(for: x)) }
        }
        if let a = addend { y = try y + a }
        if let s = outputScale { y = try y * s }
        if let b = shift { y = try y + b }
        return y
    }
}
