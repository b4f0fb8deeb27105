import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A bottleneck adapter in a residual slot (`ResidualSlotHost`), as the adapters library's `Adapter` and
/// `ParallelAdapter` compute it. `y` is the sublayer's output after its dropout, `h` the residual input, `LN` the
/// host's norm (BERT's `LayerNorm`; none in T5, where `LN(s)` reads `s`):
///
/// ```
/// f(x) = dropout(up(act(down(ln_before?(x)))) * scaling) * gate      gate = mean_t sigmoid(gate(x)) if use_gating
///
/// sequential:  r = y                                  residual_before_ln true
///              x = original_ln_before ? LN(y + h) : y    (r = y + h before the norm for "post_add")
///              r = x                                  residual_before_ln false
///              o = ln_after(f(x) + r)                 adapter_residual_before_ln true
///              o = ln_after?(f(x)) + r                otherwise
/// parallel:    o = ln_after?(f(h)) + y
/// output:      original_ln_after ? LN(o + h) : o
/// ```
/// Shapes: `y`, `h`, `o`: [B, T, H]; `down`: [H] -> [m], `up`: [m] -> [H] (`Linear`, or `PHMLayer` for Compacter);
/// `scaling`: a constant, a learned [1] or a learned [H]; `gate`: [H] -> [1], the mean taken over T ([B, 1, 1]).
///
/// Children and saved names follow the adapters library's (without its adapter-name level): `adapter_down.0`
/// (`adapter_down.1` after `adapter_norm_before`), `adapter_up`, `adapter_norm_after`, `gate`, `scaling`. The maths
/// is not linear in the weights, so the adapter does not merge (`merge()` throws).
public final class BottleneckAdapter: Module, ResidualJoin, Adapter {
    public let path: String
    /// The host's path (`path` without the slot's name): what intermediates are recorded under.
    public let hostPath: String
    /// The adapters library's index of the layer (a decoder's layers counted after the encoder's).
    public let layerIndex: Int
    /// Where the host sits (`mh_adapter`, `output_adapter`, `cross_adapter`).
    public let location: SublayerLocation
    public let config: BnConfig
    let normBefore: LayerNorm?
    let down: any Layer
    let activation: Activation
    let up: any Layer
    let normAfter: LayerNorm?
    let gate: MethodGate?
    let learnedScaling: Parameter?
    let dropout: Dropout

    /// An adapter for a stream `hidden` wide with a bottleneck `bottleneck` wide, in the slot of the host at
    /// `hostPath`.
    /// `sharedRule` holds the PHM rule matrices when `shared_phm_rule` and W when `shared_W_phm` (one set for the
    /// whole model).
    public init(config: BnConfig, hidden: Int, bottleneck: Int, hostPath: String, layerIndex: Int, location: SublayerLocation,
                sharedRule: PHMSharedRule?, using rng: inout some RandomNumberGenerator) throws {
        guard let kind = config.activation else { throw ConfigError("non_linearity '\(config.nonLinearity)' is not supported") }
        self.config = config
        self.hostPath = hostPath
        self.layerIndex = layerIndex
        path = hostPath.isEmpty ? "adapters" : hostPath + ".adapters"
        self.location = location
        normBefore = config.lnBefore ? LayerNorm(hidden) : nil
        activation = Activation(kind)
        if config.phmLayer {
            down = try PHMLayer(inFeatures: hidden, outFeatures: bottleneck, config: config, sharedRule: sharedRule, position: .down,
                                name: "\(path).adapter_down", using: &rng)
            up = try PHMLayer(inFeatures: bottleneck, outFeatures: hidden, config: config, sharedRule: sharedRule, position: .up,
                              name: "\(path).adapter_up", using: &rng)
        } else {
            down = Self.initialized(Linear(hidden, bottleneck, using: &rng), config.initWeights, isUp: false, using: &rng)
            up = Self.initialized(Linear(bottleneck, hidden, using: &rng), config.initWeights, isUp: true, using: &rng)
        }
        normAfter = config.lnAfter ? LayerNorm(hidden) : nil
        gate = config.makeGate {
            let g = Linear(hidden, 1, using: &rng)
            if config.initWeights != .houlsby { Self.bertInit(g, using: &rng) }
            return g
        }
        switch config.scaling {
        case .constant: learnedScaling = nil
        case .learned: learnedScaling = Parameter(Tensor.ones([1]))
        case .channel: learnedScaling = Parameter(Tensor.ones([hidden]))
        }
        dropout = Dropout(Float(config.dropout))
        super.init()
        if let s = learnedScaling { addParameter("scaling", s) }
        if let n = normBefore { addChild("adapter_norm_before", n) }
        let downModule = addChild("adapter_down", Module())
        downModule.addChild(normBefore == nil ? "0" : "1", down)
        addChild("adapter_up", up)
        if let n = normAfter { addChild("adapter_norm_after", n) }
        if let g = gate { addChild("gate", g) }
    }

    /// `init_weights` on a projection: `bert` N(0, 0.02); `mam_adapter` Kaiming-uniform down and zero up;
    /// `houlsby` N(0, 0.01) truncated to +-0.02; biases 0.
    static func initialized(_ l: Linear, _ how: BnConfig.Initialization, isUp: Bool, using rng: inout some RandomNumberGenerator) -> Linear {
        switch how {
        case .bert: bertInit(l, using: &rng)
        case .mamAdapter:
            l.weight.value = isUp ? Tensor.zeros(l.weight.value.shape)
                : Tensor.kaimingUniform(l.weight.value.shape, fanIn: l.inFeatures, using: &rng)
        case .houlsby:
            l.weight.value = Tensor.truncatedNormal(l.weight.value.shape, std: 0.01, bound: 0.02, using: &rng)
        }
        l.bias?.value = Tensor.zeros([l.outFeatures])
        return l
    }

    static func bertInit(_ l: Linear, using rng: inout some RandomNumberGenerator) {
        l.weight.value = Tensor.normal(l.weight.value.shape, std: 0.02, using: &rng)
        l.bias?.value = Tensor.zeros([l.outFeatures])
    }

    /// f(x): [B, T, H] -> [B, T, H] (the bottleneck, scaled, dropped out and gated).
    func bottleneck(_ x: Variable, _ ctx: Context) throws -> Variable {
        var a = x
        if let n = normBefore { a = try n.forward(a, ctx) }
        a = try activation.forward(try down.forward(a, ctx), ctx)           // [B, T, m]
        var u = try up.forward(a, ctx)                                      // [B, T, H]
        switch config.scaling {
        case .constant(let s): if s != 1 { u = u * Float(s) }
        case .learned, .channel: u = try u * ctx[learnedScaling!]
        }
        u = try dropout.forward(u, ctx)
        if let g = gate {
            let v = try g.value(x, place: path, ctx)                        // [B, 1]
            ctx.recorder?.record("gate.\(layerIndex).\(location.rawValue)", try v.value.reshaped([-1]))
            u = try u * (x.shape.count >= 3 ? try v.unsqueezed(1) : v)      // [B, 1, 1]
        }
        return u
    }

    public func join(_ y: Variable, residual h: Variable, norm: (any Layer)?, _ ctx: Context) throws -> Variable {
        var out: Variable
        if config.isParallel {
            var a = try bottleneck(h, ctx)
            if let n = normAfter { a = try n.forward(a, ctx) }
            out = try a + y
        } else {
            var residual = y
            var x = y
            if config.originalLNBefore {
                let s = try y + h
                if config.residualBeforeLN == .postAdd { residual = s }
                x = try norm?.forward(s, ctx) ?? s
            }
            if config.residualBeforeLN == .adapterInput { residual = x }
            out = try bottleneck(x, ctx)
            if config.adapterResidualBeforeLN { out = try out + residual }
            if let n = normAfter { out = try n.forward(out, ctx) }
            if !config.adapterResidualBeforeLN { out = try out + residual }
        }
        if config.originalLNAfter {
            let s = try out + h
            out = try norm?.forward(s, ctx) ?? s
        }
        if let r = ctx.recorder {
            r.record("slot.\(hostPath).hidden_states", y.value)
            r.record("slot.\(hostPath).residual_input", h.value)
            r.record("slot.\(hostPath).output", out.value)
        }
        return out
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] { namedParameters() }

    public func parameterRole(_ name: String) -> ParameterRole {
        MethodGate.role(ofAdapterParameter: name)
    }

    /// The bottleneck is not linear in its weights: no merge.
    public func merge() throws {
        throw ConfigError("\(path): a bottleneck adapter cannot be merged into the base weights (it is not linear)")
    }
}

extension BottleneckAdapter {
    /// Fills every residual slot of `model` the config selects, skipping `leave_out` layers: one adapter per slot,
    /// plus the shared PHM rule (`shared_parameters`) when the config has one.
    static func attach(_ config: BnConfig, to model: Module, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let selected = try slots(of: model, selectedBy: config)
        var sharedRule: PHMSharedRule?
        if config.phmLayer && (config.sharedPhmRule || config.sharedWPhm), let first = selected.first {
            sharedRule = PHMSharedRule(config: config, hidden: first.host.hiddenSize,
                                       bottleneck: try config.bottleneckSize(hidden: first.host.hiddenSize, layer: first.layer), using: &rng)
        }
        var built: [(host: any ResidualSlotHost, adapter: BottleneckAdapter)] = []
        for (path, host, index) in selected {
            guard try host.residualJoin == nil else {
                throw ConfigError("\(path): its residual slot is already filled (one bottleneck method per model)")
            }
            let m = try config.bottleneckSize(hidden: host.hiddenSize, layer: index)
            func make(using g: inout some RandomNumberGenerator) throws -> BottleneckAdapter {
                try BottleneckAdapter(config: config, hidden: host.hiddenSize, bottleneck: m, hostPath: path, layerIndex: index,
                                      location: host.location, sharedRule: sharedRule, using: &g)
            }
            // init_weights_seed: every adapter starts from the same draws, as the library reseeds per module.
            if var seeded = config.initWeightsSeed.map({ Xoshiro256(seed: UInt64(truncatingIfNeeded: $0)) }) {
                built.append((host, try make(using: &seeded)))
            } else {
                built.append((host, try make(using: &rng)))
            }
        }
        guard !built.isEmpty else {
            throw ConfigError("bottleneck adapters: no slot of the model is selected (locations "
                + config.locations.map(\.rawValue).joined(separator: ", ") + ", leave_out \(config.leaveOut))")
        }
        for (host, adapter) in built { try host.install(adapter) }
        var adapters: [(path: String, adapter: any Adapter)] = built.map { ($0.adapter.path, $0.adapter) }
        if let s = sharedRule { adapters.append((s.path, s)) }
        return PeftAttachment(adapters: adapters)
    }

    /// The residual slots of `model` that `config` selects (its locations, without `leave_out` layers), in module
    /// order, with the adapters library's layer index of each.
    static func slots(of model: Module, selectedBy config: BnConfig) throws -> [(path: String, host: any ResidualSlotHost, layer: Int)] {
        let hosts = model.namedModules().compactMap { m in (m.module as? any ResidualSlotHost).map { (m.path, $0) } }
        guard !hosts.isEmpty else {
            throw ConfigError("bottleneck adapters need a model with residual slots (BERT, T5); \(type(of: model)) has none")
        }
        let indexed = try AdapterHubLayers.indices(hosts.map(\.0))
        let wanted = Set(config.locations)
        return zip(hosts, indexed).filter { wanted.contains($0.0.1.location) && !config.leaveOut.contains($0.1) }
            .map { ($0.0.0, $0.0.1, $0.1) }
    }
}
