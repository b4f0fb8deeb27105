import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// What a trainable parameter is for, as its adapter declares it (`Adapter.parameterRole`): training gives each role
/// its own optimiser group and learning rate without knowing the method.
public enum ParameterRole: String, Sendable, CaseIterable, Codable {
    /// The method's weights: LoRA factors, Poly's skills, IA3's scales, trained base parameters, saved modules.
    case adapter
    /// Routing weights (Poly's task logits, an input router's projection), which learn at their own rate.
    case router
}

/// Named trainable parameters with their roles, in the order given, and grouped by role.
public struct TrainableParameters {
    /// Every parameter with its role, in the order given (model order, from `PeftModel.trainableParameters()`).
    public let entries: [(role: ParameterRole, name: String, parameter: Parameter)]

    public init(_ entries: [(role: ParameterRole, name: String, parameter: Parameter)]) { self.entries = entries }

    /// Every parameter in one role.
    public init(_ parameters: [(name: String, parameter: Parameter)], role: ParameterRole = .adapter) {
        entries = parameters.map { (role, $0.name, $0.parameter) }
    }

    /// Every parameter, in the order given.
    public var all: [(name: String, parameter: Parameter)] { entries.map { ($0.name, $0.parameter) } }

    /// The parameters of `role`, in the order given (empty when it has none).
    public subscript(role: ParameterRole) -> [(name: String, parameter: Parameter)] {
        entries.filter { $0.role == role }.map { ($0.name, $0.parameter) }
    }

    /// One group per role that has parameters, in `ParameterRole.allCases` order.
    public var groups: [(role: ParameterRole, parameters: [(name: String, parameter: Parameter)])] {
        ParameterRole.allCases.map { ($0, self[$0]) }.filter { !$0.1.isEmpty }
    }
}
