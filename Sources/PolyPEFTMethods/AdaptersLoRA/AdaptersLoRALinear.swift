import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The adapters library's `LoRA` and `IA3` modules around a linear layer (its `LoRALinear`), with its gate. `x` is
/// the layer input `[B, T, in]`, `base(x) = x W^T + b`:
///
/// ```
/// add:    y = base(x) + dropout(x) A^T B^T * s          lora_A [r, in], lora_B [out, r]
/// scale:  y = base(x) * (lora_B * s)                    lora_B [out, 1] ((IA)^3; the bias is scaled too)
/// s = mean_t sigmoid(x gate_W^T + gate_b)   [B, 1, 1]   with use_gating (gate: [in] -> [1])
///   = alpha / r (add) or alpha (scale)                   without
/// ```
/// Parameters are named as the library names them, without its `loras.<name>` level: `lora_A`, `lora_B`,
/// `gate.weight`, `gate.bias`. The gate of every sample is recorded as the library returns gating scores: appended
/// as a column of `gate.<layer>.<location>_lora` in call order (`Recorder.append`). Without a gate the update merges
/// into the base weight (`W += s B A`, or rows and bias times `lora_B * s`); with one it depends on the input and does
/// not (`merge()` throws, as in the library).
public final class AdaptersLoRALinear: Module, AdapterLayer, FeatureLayer {
    public let base: any Layer
    public let path: String
    public let config: AdaptersLoRAConfig
    /// The library's layer index (a decoder's layers counted after the encoder's) and location.
    public let layerIndex: Int
    public let location: AdaptersLoRAConfig.Location
    public let inFeatures: Int
    public let outFeatures: Int
    let loraA: Parameter?
    let loraB: Parameter
    let gate: MethodGate?
    private var mergedFactor: Tensor?

    public var mergedUpdate: String? { mergedFactor == nil ? nil : "the \(config.compositionMode == .add ? "LoRA" : "(IA)^3") update" }

    /// Initialisation as the library's: `lora` A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt 5), B = 0;
    /// `bert` both ~ N(0, 0.02); `ia3` ones. (IA)^3's `lora` init is zeros (the library warns). The gate's weight is
    /// N(0, 0.02) and its bias PyTorch's default U(-1/sqrt(in), 1/sqrt(in)).
    public init(wrapping layer: any Layer, path: String, config: AdaptersLoRAConfig, layerIndex: Int,
                location: AdaptersLoRAConfig.Location, using rng: inout some RandomNumberGenerator) throws {
        guard let f = layer as? any FeatureLayer else {
            throw ConfigError("\(path): the adapters library's LoRA adapts Linear layers, not \(type(of: layer))")
        }
        base = f
        self.path = path
        self.config = config
        self.layerIndex = layerIndex
        self.location = location
        inFeatures = f.inFeatures
        outFeatures = f.outFeatures
        let bound = 1 / Float(f.inFeatures).squareRoot()
        func initial(_ shape: [Int], isB: Bool, using g: inout some RandomNumberGenerator) -> Tensor {
            switch config.initWeights {
            case .lora: return isB ? Tensor.zeros(shape) : Tensor.uniform(shape, low: -bound, high: bound, using: &g)
            case .bert: return Tensor.normal(shape, std: 0.02, using: &g)
            case .ia3: return Tensor.ones(shape)
            }
        }
        if config.compositionMode == .add {
            loraA = Parameter(initial([config.r, f.inFeatures], isB: false, using: &rng))
            loraB = Parameter(initial([f.outFeatures, config.r], isB: true, using: &rng))
        } else {
            loraA = nil
            loraB = Parameter(initial([f.outFeatures, 1], isB: true, using: &rng))
        }
        gate = config.makeGate {
            let g = Linear(f.inFeatures, 1, using: &rng)
            g.weight.value = Tensor.normal([1, f.inFeatures], std: 0.02, using: &rng)
            g.bias?.value = Tensor.uniform([1], low: -bound, high: bound, using: &rng)
            return g
        }
        super.init()
        addChild("base_layer", f)
        if let a = loraA { addParameter("lora_A", a) }
        addParameter("lora_B", loraB)
        if let g = gate { addChild("gate", g) }
    }

    /// The per-sample gate `[B, 1, 1]` (`[B, 1]` for a 2-D input), recorded as the library's gating score.
    func gateValue(_ x: Variable, _ ctx: Context) throws -> Variable? {
        guard let g = gate else { return nil }
        let v = try g.value(x, place: path, ctx)                                        // [B, 1]
        ctx.recorder?.append("gate.\(layerIndex).\(location.gatingKey)", column: try v.value.reshaped([-1]))
        return x.shape.count >= 3 ? try v.unsqueezed(1) : v
    }

    public func parameterRole(_ name: String) -> ParameterRole {
        MethodGate.role(ofAdapterParameter: name)
    }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        let s = Float(config.scaling)
        let g = try gateValue(x, ctx)
        guard let loraA else {                                                          // (IA)^3: scale the output
            let v = try ctx[loraB].reshaped([-1])                                       // [out]
            return .affine(AffineUpdate(outputScale: try g.map { try v * $0 } ?? v * s))
        }
        if g == nil, !(ctx.isTraining && config.dropout > 0) {
            let left = try ctx[loraA].permuted([1, 0]).unsqueezed(0)                    // [1, in, r]
            let right = try ctx[loraB].permuted([1, 0]).unsqueezed(0)                   // [1, r, out]
            let rows = inFeatures > 0 ? x.value.count / inFeatures : 0
            return .lowRank(try LowRankUpdate(left: left, right: right, rowGroups: [Int](repeating: 0, count: rows),
                                              groupCount: 1, scale: s))
        }
        let h = ctx.isTraining && config.dropout > 0 ? try x.dropout(p: Float(config.dropout), using: &ctx.rng) : x
        let d = try h.matmul(try ctx[loraA].permuted([1, 0])).matmul(try ctx[loraB].permuted([1, 0]))   // [B, T, out]
        return .dense(try g.map { try d * $0 } ?? d * s)
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { mergedFactor != nil }

    /// Adds `s B A` into the base weight, or multiplies its rows and bias by `lora_B * s`. Gated modules do not merge.
    public func merge() throws {
        guard mergedFactor == nil else { return }
        guard gate == nil else { throw ConfigError("\(path): a gated LoRA cannot be merged (its scaling depends on the input)") }
        let linear = try requireLinearBase(for: "merging")
        let s = Float(config.scaling)
        if let a = loraA {
            let delta = try loraB.value.matmul(a.value) * s                               // [out, in]
            try linear.weight.value.add(delta)
            mergedFactor = delta
        } else {
            let l = loraB.value * s                                                        // [out, 1]
            if let zero = l.scalars.firstIndex(of: 0) {
                throw ConfigError("\(path): lora_B[\(zero)] * alpha is 0, so the merge could not be undone; refusing to merge")
            }
            linear.weight.value = try (linear.weight.value * l).contiguous()
            if let b = linear.bias { b.value = try (b.value * l.reshaped([-1])).contiguous() }
            mergedFactor = l
        }
    }

    public func unmerge() throws {
        guard let f = mergedFactor else { return }
        let linear = try requireLinearBase(for: "unmerging")
        if loraA != nil {
            linear.weight.value = try (linear.weight.value - f).contiguous()
        } else {
            linear.weight.value = try (linear.weight.value / f).contiguous()
            if let b = linear.bias { b.value = try (b.value / f.reshaped([-1])).contiguous() }
        }
        mergedFactor = nil
    }

    /// The modules of `model` that `config` adapts, in module order, with the library's layer index and location:
    /// BERT's `attention.self.{query,key,value}` (by `attn_matrices` `q`, `k`, `v`), `intermediate.dense`, the
    /// layer's `output.dense`; T5's `SelfAttention` and `EncDecAttention` `{q,k,v}`, `DenseReluDense.wi` (`wi_1` in
    /// a gated FFN), `DenseReluDense.wo`.
    static func targets(of model: Module, selectedBy config: AdaptersLoRAConfig)
        throws -> [(path: String, layer: any Layer, index: Int, location: AdaptersLoRAConfig.Location)] {
        var found: [(String, any Layer, AdaptersLoRAConfig.Location, String?)] = []
        for (path, module) in model.namedModules() where !path.isEmpty {
            guard let layer = module as? any Layer, let (location, key) = place(path, in: model) else { continue }
            found.append((path, layer, location, key))
        }
        guard !found.isEmpty else {
            throw ConfigError("the adapters library's LoRA places itself in BERT and T5 layers; \(type(of: model)) has none of them")
        }
        let indices = try AdapterHubLayers.indices(found.map(\.0))
        let wanted = Set(config.locations)
        let chosen = zip(found, indices).filter { f, i in
            wanted.contains(f.2) && !config.leaveOut.contains(i) && (f.3.map(config.attnMatrices.contains) ?? true)
        }.map { f, i in (path: f.0, layer: f.1, index: i, location: f.2) }
        guard !chosen.isEmpty else {
            throw ConfigError("the adapters library's LoRA selects no module of this model (locations "
                + config.locations.map(\.gatingKey).joined(separator: ", ") + ", leave_out \(config.leaveOut))")
        }
        return chosen
    }

    /// The location and attention key of the module at `path`, or nil when the library's LoRA does not wrap it.
    static func place(_ path: String, in model: Module) -> (AdaptersLoRAConfig.Location, String?)? {
        let parts = path.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return nil }
        let last = parts[parts.count - 1], parent = parts[parts.count - 2]
        let grand = parts.count >= 3 ? parts[parts.count - 3] : ""
        switch (grand, parent, last) {
        case ("attention", "self", "query"): return (.selfAttention, "q")
        case ("attention", "self", "key"): return (.selfAttention, "k")
        case ("attention", "self", "value"): return (.selfAttention, "v")
        case (_, "intermediate", "dense"): return (.intermediate, nil)
        case (let g, "output", "dense") where g != "attention": return (.output, nil)
        case (_, "SelfAttention", let k), (_, "EncDecAttention", let k):
            return ["q", "k", "v"].contains(k) ? (.selfAttention, k) : nil
        case (_, "DenseReluDense", "wi"), (_, "DenseReluDense", "wi_1"): return (.intermediate, nil)
        case (_, "DenseReluDense", "wo"): return (.output, nil)
        default: return nil
        }
    }
}
