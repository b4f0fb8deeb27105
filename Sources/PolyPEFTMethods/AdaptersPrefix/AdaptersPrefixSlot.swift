import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The adapters library's prefix tuning in one attention layer's prefix slot (its `PrefixTuningLayer`): the layer's
/// key and value prefix from the pool's generator for its location (`AdaptersPrefixPool`), scaled by a gate with
/// `use_gating`. `x` is the attention's input `[B, T, H]` (BERT: the layer input; T5: the normed hidden states, the
/// decoder's for cross-attention):
///
/// ```
/// g = mean_t sigmoid(x W_g^T + b_g)        [B, outputs]    W_g [outputs, H]; outputs 1 (shared_gating) or 2
/// key   = prefix key   * g[:, 0]           [B, heads, P, d]
/// value = prefix value * g[:, outputs-1]
/// ```
/// The gate is the child `gate` (the library's `prefix_gates.<name>`), weight N(0, 0.02) and PyTorch's default bias.
/// Each forward records `g` as the library returns gating scores: `gate.<layer>.<location>_prefix`, `[B]` for a
/// shared gate and `[B, 2]` otherwise (the library squeezes a batch of one further).
public final class AdaptersPrefixSlot: Module, AttentionPrefix, Adapter {
    public let path: String
    public let hostPath: String
    public let layerIndex: Int
    public let location: AdaptersPrefixConfig.Location
    let gate: MethodGate?
    private(set) var pool: AdaptersPrefixPool?
    private(set) var position = 0

    init(host: any AttentionPrefixHost, hostPath: String, layerIndex: Int, location: AdaptersPrefixConfig.Location,
         config: AdaptersPrefixConfig, using rng: inout some RandomNumberGenerator) throws {
        self.hostPath = hostPath
        path = hostPath + "." + (type(of: host)).prefixSlotName
        self.layerIndex = layerIndex
        self.location = location
        gate = config.makeGate({
            let g = Linear(host.inputSize, config.gateOutputs, using: &rng)
            g.weight.value = Tensor.normal([config.gateOutputs, host.inputSize], std: 0.02, using: &rng)
            return g
        }, outputs: config.gateOutputs)
        super.init()
        if let gate { addChild("gate", gate) }
    }

    /// Reads its prefix from `pool`, as the `position`-th layer of its location.
    func connect(to pool: AdaptersPrefixPool, position: Int) throws {
        guard let g = pool.generator(at: location), position < g.layers else {
            throw ConfigError("\(path): the prefix pool has no layer \(position) at \(location.key)")
        }
        self.pool = pool
        self.position = position
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] {
        namedParameters()
    }

    public func parameterRole(_ name: String) -> ParameterRole {
        MethodGate.role(ofAdapterParameter: name)
    }

    public func prefix(for x: Variable, _ ctx: Context) throws -> KeyValuePrefix? {
        guard let generator = pool?.generator(at: location) else {
            throw ConfigError("\(path): the prefix slot is not connected to a prefix pool")
        }
        let b = x.shape[0]
        var p = try generator.keyValue(position: position, batch: b, ctx)
        guard let gate else { return p }
        let g = try gate.value(x, place: path, ctx)                                       // g: [B, outputs]
        ctx.recorder?.record("gate.\(layerIndex).\(location.key)", gate.outputs == 1 ? try g.value.reshaped([b]) : g.value)
        let n = gate.outputs
        let forKey = try g.sliced(axis: 1, start: 0, end: 1).reshaped([b, 1, 1, 1])
        let forValue = try g.sliced(axis: 1, start: n - 1, end: n).reshaped([b, 1, 1, 1])
        p.key = try p.key * forKey
        p.value = try p.value * forValue
        return p
    }

    /// Every attention with a prefix slot in `model` (`all`, in module order, with the library's layer index and
    /// location) and those `config` selects (`chosen`): BERT's `attention.self` (`self`), T5's `SelfAttention`
    /// (`encoder` in the encoder, `self` in the decoder) and `EncDecAttention` (`cross`).
    static func places(in model: Module, selectedBy config: AdaptersPrefixConfig) throws
        -> (all: [Place], chosen: [Place]) {
        var found: [(String, any AttentionPrefixHost)] = []
        for (path, module) in model.namedModules() where !path.isEmpty {
            if let host = module as? any AttentionPrefixHost { found.append((path, host)) }
        }
        guard !found.isEmpty else {
            throw ConfigError("the adapters library's prefix tuning needs attention layers with a prefix slot (BERT, T5); "
                + "\(type(of: model)) has none")
        }
        let indices = try AdapterHubLayers.indices(found.map(\.0))
        var all: [Place] = []
        for ((path, host), index) in zip(found, indices) {
            let parts = path.split(separator: ".")
            let location: AdaptersPrefixConfig.Location
            switch parts.last {
            case "EncDecAttention": location = .cross
            case "SelfAttention": location = parts.contains("decoder") ? .selfAttention : .encoder
            default: location = .selfAttention
            }
            all.append(Place(path: path, host: host, index: index, location: location))
        }
        let chosen = all.filter { p in
            !config.leaveOut.contains(p.index) && (p.location != .encoder || config.encoderPrefix)
                && (p.location != .cross || config.crossPrefix)
        }
        guard !chosen.isEmpty else {
            throw ConfigError("the adapters library's prefix tuning selects no attention layer of this model (leave_out "
                + "\(config.leaveOut), encoder_prefix \(config.encoderPrefix), cross_prefix \(config.crossPrefix))")
        }
        return (all, chosen)
    }

    /// An attention layer that can take a prefix.
    struct Place {
        let path: String
        let host: any AttentionPrefixHost
        let index: Int
        let location: AdaptersPrefixConfig.Location
    }

    /// The pool's path: `prefix_tuning` on the base model, the module whose `encoder` (or `decoder`) holds the
    /// attentions (`bert.prefix_tuning` in a BERT classifier, `prefix_tuning` in BERT and T5).
    static func poolPath(forHosts paths: [String]) -> String {
        let parts = (paths.first ?? "").split(separator: ".").map(String.init)
        let base = parts.prefix { $0 != "encoder" && $0 != "decoder" }
        return (base + ["prefix_tuning"]).joined(separator: ".")
    }
}
