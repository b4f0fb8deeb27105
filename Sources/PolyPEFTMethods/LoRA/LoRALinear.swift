import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// LoRA around a frozen `Linear` (PEFT's `lora.Linear`), with PEFT's tensor layouts, and its DoRA variant:
///
/// ```
/// lora_A.weight: [r, in]     lora_B.weight: [out, r]     (lora_bias: lora_B.bias [out])
/// scaling = lora_alpha / r         (use_rslora: lora_alpha / sqrt(r))
/// LoRA:  y = base(x) + (B A dropout(x) + b_B) * scaling
///        merged: W' = W + scaling * B A,  b' = b + scaling * b_B
/// DoRA:  n = ||W + scaling * B A||_row         [out], a constant (PEFT detaches it)
///        g = m / n                             m = lora_magnitude_vector [out]
///        y = g * (x W^T + scaling * B A dropout(x)) + b
///        merged: W' = g * (W + scaling * B A)  (rows), bias unchanged
/// ```
/// The DoRA forward is an affine update around the fused low-rank one: `(x W^T + b + x A^T B^T s) * g + b (1 - g)`.
public final class LoRALinear: Module, AdapterLayer {
    public let baseLayer: Linear
    public let path: String
    public let r: Int
    public let scaling: Float
    public let dropout: Float
    public let loraA: Linear        // weight [r, in]
    public let loraB: Linear        // weight [out, r], bias [out] with lora_bias
    /// DoRA's magnitude per output row `[out]`, or nil for plain LoRA.
    public let magnitude: Parameter?
    /// What is merged into the base weight: the LoRA update, or DoRA's with the factor `g` it was merged with
    /// (kept to unmerge exactly).
    private enum MergedState { case lora, dora(factor: Tensor) }
    private var merged: MergedState?

    public var base: any Layer { baseLayer }
    public var isMerged: Bool { merged != nil }
    public var mergedUpdate: String? { isMerged ? (magnitude == nil ? "the LoRA update" : "the DoRA update") : nil }

    /// Initialisation as PEFT's `init_lora_weights`: `.kaiming` (True: A kaiming-uniform, B zero), `.gaussian`
    /// (A ~ N(0, 1/r^2), B zero), `.random` (False: both with `nn.Linear`'s default, so the adapter starts non-zero).
    public enum Initialization: Sendable, Equatable { case kaiming, gaussian, random }

    /// DoRA's magnitude starts as the row norms of the initial `W + scaling * B A`, so the layer starts as plain LoRA.
    public init(wrapping base: Linear, path: String, r: Int, alpha: Float, dropout: Float = 0, useRslora: Bool = false,
                useDora: Bool = false, loraBias: Bool = false, initialization: Initialization = .kaiming,
                using rng: inout some RandomNumberGenerator) throws {
        guard r > 0 else { throw ConfigError("\(path): LoRA r must be positive, got \(r)") }
        guard dropout >= 0 && dropout < 1 else { throw ConfigError("\(path): lora_dropout must be in [0, 1), got \(dropout)") }
        guard !(useDora && loraBias) else { throw ConfigError("\(path): DoRA with lora_bias is not supported (PEFT rejects it too)") }
        baseLayer = base
        self.path = path
        self.r = r
        self.dropout = dropout
        scaling = useRslora ? alpha / Float(r).squareRoot() : alpha / Float(r)
        loraA = Linear(base.inFeatures, r, bias: false, using: &rng)
        loraB = Linear(r, base.outFeatures, bias: loraBias, using: &rng)
        switch initialization {
        case .kaiming: loraB.weight.value = Tensor.zeros([base.outFeatures, r])
        case .gaussian:
            loraA.weight.value = Tensor.normal([r, base.inFeatures], std: 1 / Float(r), using: &rng)
            loraB.weight.value = Tensor.zeros([base.outFeatures, r])
        case .random: break
        }
        if initialization != .random, let b = loraB.bias { b.value = Tensor.zeros([base.outFeatures]) }
        magnitude = useDora ? Parameter(Tensor.zeros([base.outFeatures])) : nil
        super.init()
        addChild("base_layer", base)
        addChild("lora_A", loraA)
        addChild("lora_B", loraB)
        if let m = magnitude {
            m.value = try rowNorms(combinedWeight())
            addParameter("lora_magnitude_vector", m)
        }
    }

    /// The update: low-rank and fused into the base matmul (`x A^T B^T * scaling`), with `scaling * b_B` as a shift
    /// (lora_bias) and DoRA's per-row factor around it; in training with dropout (which acts on `A`'s input only)
    /// the low-rank term is computed densely from the dropped input.
    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let term: AdapterUpdate                                                             // x A^T B^T * scaling
        if ctx.isTraining && dropout > 0 {
            let h = try x.dropout(p: dropout, using: &ctx.rng)
            term = .dense(try loraB.weightOnly(loraA(h, ctx), ctx) * scaling)
        } else {
            let left = try ctx[loraA.weight].permuted([1, 0]).unsqueezed(0)                 // [1, in, r]
            let right = try ctx[loraB.weight].permuted([1, 0]).unsqueezed(0)                // [1, r, out]
            let rows = baseLayer.inFeatures > 0 ? x.value.count / baseLayer.inFeatures : 0
            term = .lowRank(try LowRankUpdate(left: left, right: right, rowGroups: [Int](repeating: 0, count: rows),
                                              groupCount: 1, scale: scaling))
        }
        if let bB = loraB.bias { return .affine(AffineUpdate(around: term, shift: ctx[bB] * scaling)) }   // [out]
        guard let m = magnitude else { return term }
        let g = try ctx[m] / Variable(try rowNorms(combinedWeight()))                       // [out]; the norm is a constant
        let shift = try baseLayer.bias.map { try ctx[$0] * (1 - g) }                        // b (1 - g)
        return .affine(AffineUpdate(around: term, outputScale: g, shift: shift))
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { isMerged }

    /// The update of the base weight: `scaling * B A`, shape `[out, in]`.
    public func deltaWeight() throws -> Tensor {
        try loraB.weight.value.matmul(loraA.weight.value) * scaling
    }

    /// `W + scaling * B A` `[out, in]`, whose row norms DoRA divides by.
    func combinedWeight() throws -> Tensor { try baseLayer.weight.value + deltaWeight() }

    /// Adds the update into the base weight (and `scaling * b_B` into its bias); for DoRA, `W' = g * (W + scaling B A)`.
    /// Nothing is changed when it throws.
    public func merge() throws {
        guard !isMerged else { return }
        if let m = magnitude {
            let combined = try combinedWeight()                                             // [out, in]
            let g = try m.value / rowNorms(combined)                                        // [out]
            baseLayer.weight.value = try (combined * g.reshaped([-1, 1])).contiguous()
            merged = .dora(factor: g)
            return
        }
        let bias = try loraBiasTarget()
        try baseLayer.weight.value.add(try deltaWeight())
        if let bB = loraB.bias { try bias?.value.add(bB.value * scaling) }
        merged = .lora
    }

    /// Takes a merged update out again: `W = W' - scaling B A` (DoRA: `W = W' / g - scaling B A` with the `g` of merge).
    public func unmerge() throws {
        switch merged {
        case nil: return
        case .dora(let g)?:
            baseLayer.weight.value = try (baseLayer.weight.value / g.reshaped([-1, 1]) - deltaWeight()).contiguous()
        case .lora?:
            try baseLayer.weight.value.add(-(try deltaWeight()))
            if let bB = loraB.bias { try loraBiasTarget()?.value.add(-(bB.value * scaling)) }
        }
        merged = nil
    }

    /// The base bias that `lora_B`'s bias merges into (nil without `lora_bias`); an error when the base has none.
    private func loraBiasTarget() throws -> Parameter? {
        guard loraB.bias != nil else { return nil }
        guard let b = baseLayer.bias else {
            throw ConfigError("\(path): lora_bias needs the base layer to have a bias to merge into")
        }
        return b
    }
}

/// The Euclidean norm of each row of `w` `[out, in]`: `[out]`.
func rowNorms(_ w: Tensor) throws -> Tensor {
    try (w * w).sum(axes: [1]).map { $0.squareRoot() }
}

extension Linear {
    /// `x W^T` without the bias.
    func weightOnly(_ x: Variable, _ ctx: Context) throws -> Variable { try x.linear(weight: ctx[weight], bias: nil) }
}

/// The widths of the wrapped `Linear`, so that methods which scale inputs or outputs (IA3) can wrap this adapter.
extension LoRALinear: FeatureLayer {
    public var inFeatures: Int { baseLayer.inFeatures }
    public var outFeatures: Int { baseLayer.outFeatures }
}
