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
    /// What is merged into the base weight: for DoRA the factor `g` it was merged with, to unmerge exactly.
    private var merged: (doraFactor: Tensor?, Void)?

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
            m.value = try rowNorms(base.weight.value + deltaWeight())
            addParameter("lora_magnitude_vector", m)
        }
    }

    /// The update: low-rank and fused into the base matmul (`x A^T B^T * scaling`), with `scaling * b_B` as a shift
    /// (lora_bias) and DoRA's per-row factor around it; in training with dropout (which acts on `A`'s input only)
    /// the low-rank term is computed densely from the dropped input.
    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let dropped = ctx.isTraining && dropout > 0
        var lowRank: LowRankUpdate?, addend: Variable?
        if dropped {
            let h = try x.dropout(p: dropout, using: &ctx.rng)
            addend = try loraB.weightOnly(loraA(h, ctx), ctx) * scaling
        } else {
            let left = try ctx[loraA.weight].permuted([1, 0]).unsqueezed(0)                 // [1, in, r]
            let right = try ctx[loraB.weight].permuted([1, 0]).unsqueezed(0)                // [1, r, out]
            let rows = baseLayer.inFeatures > 0 ? x.value.count / baseLayer.inFeatures : 0
            lowRank = try LowRankUpdate(left: left, right: right, rowGroups: [Int](repeating: 0, count: rows),
                                        groupCount: 1, scale: scaling)
        }
        let loraShift = loraB.bias.map { ctx[$0] * scaling }                        // [out]
        guard let m = magnitude else {
            if loraShift == nil { return try addend.map { .dense($0) } ?? .lowRank(unwrap(lowRank)) }
            return .affine(AffineUpdate(lowRank: lowRank, addend: addend, shift: loraShift))
        }
        let n = try rowNorms(try baseLayer.weight.value + deltaWeight())                     // [out], constant
        let g = try ctx[m] / Variable(n)                                                     // [out]
        var shift: Variable? = nil
        if let b = baseLayer.bias { shift = try ctx[b] * (1 - g) }                       // b (1 - g)
        return .affine(AffineUpdate(lowRank: lowRank, addend: addend, outputScale: g, shift: shift))
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { isMerged }

    /// The update of the base weight: `scaling * B A`, shape `[out, in]`.
    public func deltaWeight() throws -> Tensor {
        try loraB.weight.value.matmul(loraA.weight.value) * scaling
    }

    /// Adds the update into the base weight (and `scaling * b_B` into its bias); for DoRA, `W' = g * (W + scaling B A)`.
    public func merge() throws {
        guard !isMerged else { return }
        guard let m = magnitude else {
            try baseLayer.weight.value.add(try deltaWeight())
            if let bB = loraB.bias { try addToBias(bB.value * scaling) }
            merged = (nil, ())
            return
        }
        let combined = try baseLayer.weight.value + deltaWeight()                                                  // [out, in]
        let g = try m.value / rowNorms(combined)                                              // [out]
        baseLayer.weight.value = try (combined * g.reshaped([-1, 1])).contiguous()
        merged = (g, ())
    }

    /// Takes a merged update out again: `W = W' - scaling B A` (DoRA: `W = W' / g - scaling B A` with the `g` of merge).
    public func unmerge() throws {
        guard let state = merged else { return }
        if let g = state.doraFactor {
            baseLayer.weight.value = try (baseLayer.weight.value / g.reshaped([-1, 1]) - deltaWeight()).contiguous()
        } else {
            try baseLayer.weight.value.add(-(try deltaWeight()))
            if let bB = loraB.bias { try addToBias(-(bB.value * scaling)) }
        }
        merged = nil
    }

    private func addToBias(_ d: Tensor) throws {
        guard let b = baseLayer.bias else {
            throw ConfigError("\(path): lora_bias needs the base layer to have a bias to merge into")
        }
        try b.value.add(d)
    }
}

private func unwrap<T>(_ v: T?) throws -> T {
    guard let v else { throw ConfigError("LoRA: internal inconsistency (no update computed)") }
    return v
}

/// The Euclidean norm of each row of `w` `[out, in]`: `[out]`.
func rowNorms(_ w: Tensor) throws -> Tensor {
    try (w * w).sum(axes: [1]).map { $0.squareRoot() }
}

extension Linear {
    /// `x W^T` without the bias.
    func weightOnly(_ x: Variable, _ ctx: Context) throws -> Variable { try x.linear(weight: ctx[weight], bias: nil) }
}
