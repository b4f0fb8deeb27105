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
