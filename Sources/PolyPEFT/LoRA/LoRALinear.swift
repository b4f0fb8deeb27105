/// LoRA around a frozen `Linear` (PEFT's `lora.Linear`), with PEFT's tensor layouts:
///
/// ```
/// lora_A.weight: [r, in]     lora_B.weight: [out, r]
/// scaling = lora_alpha / r         (use_rslora: lora_alpha / sqrt(r))
/// y = base(x) + B(A(dropout(x))) * scaling
/// merged: W' = W + scaling * B A
/// ```
public final class LoRALinear: Module, AdapterLayer {
    public let baseLayer: Linear
    public let path: String
    public let r: Int
    public let scaling: Float
    public let dropout: Float
    public let loraA: Linear        // weight [r, in]
    public let loraB: Linear        // weight [out, r]
    /// True while the update is merged into the base weight (forward then adds nothing).
    public private(set) var isMerged = false

    public var mergedUpdate: String? { isMerged ? "the LoRA update" : nil }

    /// Initialisation as PEFT's `init_lora_weights`: `.kaiming` (True: A kaiming-uniform, B zero), `.gaussian`
    /// (A ~ N(0, 1/r^2), B zero), `.random` (False: both with `nn.Linear`'s default, so the adapter starts non-zero).
    public enum Initialization: Sendable, Equatable { case kaiming, gaussian, random }

    public init(wrapping base: Linear, path: String, r: Int, alpha: Float, dropout: Float = 0, useRslora: Bool = false,
                initialization: Initialization = .kaiming, using rng: inout some RandomNumberGenerator) throws {
        guard r > 0 else { throw PolyError("\(path): LoRA r must be positive, got \(r)") }
        guard dropout >= 0 && dropout < 1 else { throw PolyError("\(path): lora_dropout must be in [0, 1), got \(dropout)") }
        baseLayer = base
        self.path = path
        self.r = r
        self.dropout = dropout
        scaling = useRslora ? alpha / Float(r).squareRoot() : alpha / Float(r)
        loraA = Linear(base.inFeatures, r, bias: false, using: &rng)
        loraB = Linear(r, base.outFeatures, bias: false, using: &rng)
        switch initialization {
        case .kaiming: loraB.weight.value = Tensor.zeros([base.outFeatures, r])
        case .gaussian:
            loraA.weight.value = Tensor.normal([r, base.inFeatures], std: 1 / Float(r), using: &rng)
            loraB.weight.value = Tensor.zeros([base.outFeatures, r])
        case .random: break
        }
        super.init()
        addChild("base_layer", base)
        addChild("lora_A", loraA)
        addChild("lora_B", loraB)
    }

    /// `B(A(dropout(x))) * scaling`;  x: [..., in] -> [..., out].
    public func delta(_ x: Variable, _ ctx: Context) throws -> Variable {
        if isMerged { return Variable(Tensor.zeros(Array(x.shape.dropLast()) + [baseLayer.outFeatures])) }
        var h = x
        if ctx.isTraining && dropout > 0 { h = try h.dropout(p: dropout, using: &ctx.rng) }
        return try loraB(try loraA(h, ctx), ctx) * scaling
    }

    /// `x A^T B^T * scaling` as a low-rank update with one group, which the forward fuses into the base layer's
    /// matmuls; dense (`delta`) while merged, and in training with dropout (which acts on `A`'s input only).
    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        guard !isMerged, !(ctx.isTraining && dropout > 0) else { return .dense(try delta(x, ctx)) }
        let left = try ctx[loraA.weight].permuted([1, 0]).unsqueezed(0)                 // [1, in, r]
        let right = try ctx[loraB.weight].permuted([1, 0]).unsqueezed(0)                // [1, r, out]
        let rows = baseLayer.inFeatures > 0 ? x.value.count / baseLayer.inFeatures : 0
        return .lowRank(try LowRankUpdate(left: left, right: right, rowGroups: [Int](repeating: 0, count: rows),
                                          groupCount: 1, scale: scaling))
    }

    /// The update of the base weight: `scaling * B A`, shape `[out, in]`.
    public func deltaWeight() throws -> Tensor {
        try loraB.weight.value.matmul(loraA.weight.value) * scaling
    }

    /// Adds the update into the base weight; forward then costs the base layer alone.
    public func merge() throws {
        guard !isMerged else { return }
        try baseLayer.weight.value.add(try deltaWeight())
        isMerged = true
    }

    /// Subtracts a merged update again.
    public func unmerge() throws {
        guard isMerged else { return }
        try baseLayer.weight.value.add(-(try deltaWeight()))
        isMerged = false
    }
}
