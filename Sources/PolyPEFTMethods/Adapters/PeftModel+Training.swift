import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// What a `PeftModel` trains, grouped by the roles its adapters declare.
extension PeftModel {
    /// The adapter parameters that train, each `Parameter` once (a parameter shared by several adapters, such as a
    /// shared Poly router, is listed under its first key): what to hand an optimizer. `adapterParameters()` lists a
    /// shared parameter under every key (as it is saved), and an optimizer given both entries would step it twice.
    public func trainableAdapterParameters() -> [(key: String, parameter: Parameter)] {
        adapterParameters().filter { $0.parameter.requiresGrad }.uniqueObjects { $0.parameter }
    }

    /// The trainable adapter parameters under PEFT's keys, each `Parameter` once (`trainableAdapterParameters()`),
    /// grouped by `Adapter.parameterRole`; trained base parameters and saved modules are `.adapter`.
    public func trainableParameters() -> TrainableParameters {
        var roles: [ObjectIdentifier: ParameterRole] = [:]
        for (_, adapter) in adapters {
            for (name, p) in adapter.adapterParameters() { roles[ObjectIdentifier(p)] = adapter.parameterRole(name) }
        }
        return TrainableParameters(trainableAdapterParameters().map {
            (roles[ObjectIdentifier($0.parameter)] ?? .adapter, $0.key, $0.parameter)
        })
    }
}

/// The training form of an adapter, for checkpoints: what trains, as it trains.
extension PeftModel {
    /// True when `saved` (this model's `adapterTensors()`) does not hold the trained parameters themselves: a method
    /// that saves a function of them (P-tuning's MLP output, prefix tuning with a projection) cannot resume training
    /// from its adapter file. A file that holds every parameter and more (sparse fine-tuning's indices beside its
    /// values) resumes from the file itself.
    public func savesDerivedTensors(_ saved: [String: Tensor]) -> Bool {
        !Set(adapterParameters().map(\.key)).isSubset(of: Set(saved.keys))
    }

    /// The trained parameters by key (`adapterParameters()`), for a checkpoint to resume from.
    public func adapterParameterTensors() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (key, p) in adapterParameters() { out[key] = p.value }
        return out
    }

    /// Sets the trained parameters from `adapterParameterTensors()`'s keys: every key present with its shape, no
    /// other key, no NaN or infinity unless `allowNonFinite` (errors name `source` and the key).
    public func loadAdapterParameters(_ tensors: [String: Tensor], source: String, allowNonFinite: Bool = false) throws {
        let expected = adapterParameters()
        let keys = Set(expected.map(\.key))
        if let extra = tensors.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ConfigError("\(source): unexpected tensor '\(extra)' (the model has no such adapter parameter)")
        }
        for (key, p) in expected {
            guard let t = tensors[key] else { throw ConfigError("\(source): missing tensor '\(key)'") }
            guard t.shape == p.value.shape else {
                throw ConfigError("\(source): tensor '\(key)' has shape \(fmt(t.shape)), the model expects \(fmt(p.value.shape))")
            }
            if !allowNonFinite { try NonFiniteWeightsError.check(t, key: key, source: source) }
        }
        for (key, p) in expected { p.value = tensors[key]!.contiguous() }
    }
}
