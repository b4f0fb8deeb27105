/// A feed-forward network described by an op list, as the golden cases and `polyctl` describe base models:
///
/// ```
/// [{"op": "linear", "name": "fc1", "in": 16, "out": 32, "bias": true}, {"op": "relu"}, {"op": "linear", ...}]
/// ```
/// Linear layers keep their given names (so PEFT's `target_modules` apply); activations are named `act<i>`.
public final class MLP: Module, Layer {
    /// One step of the network.
    public enum Op: Equatable, Sendable {
        case linear(name: String, inFeatures: Int, outFeatures: Int, bias: Bool)
        case activation(Activation.Kind)
    }

    public let ops: [Op]

    public init(_ ops: [Op], using rng: inout some RandomNumberGenerator) throws {
        self.ops = ops
        super.init()
        var width: Int?
        for (i, op) in ops.enumerated() {
            switch op {
            case let .linear(name, inF, outF, bias):
                guard inF > 0, outF > 0 else { throw ModuleError("MLP: layer '\(name)' has non-positive size \(inF) -> \(outF)") }
                if let w = width, w != inF { throw ModuleError("MLP: layer '\(name)' takes \(inF) inputs but receives \(w)") }
                guard child(name) == nil else { throw ModuleError("MLP: duplicate layer name '\(name)'") }
                addChild(name, Linear(inF, outF, bias: bias, using: &rng))
                width = outF
            case let .activation(kind):
                addChild("act\(i)", Activation(kind))
            }
        }
    }

    /// Parses the JSON op list (`linear` with `name`/`in`/`out`/`bias`, or an activation: relu, tanh, sigmoid, gelu,
    /// gelu_tanh, identity).
    public static func ops(from json: JSONValue) throws -> [Op] {
        guard let list = json.arrayValue else { throw ModuleError("MLP: architecture must be a list, got \(json.kindName)") }
        return try list.enumerated().map { i, item in
            guard let op = item["op"]?.stringValue else { throw ModuleError("MLP: op \(i) has no \"op\" name") }
            if op == "linear" {
                guard let name = item["name"]?.stringValue, let inF = item["in"]?.intValue, let outF = item["out"]?.intValue else {
                    throw ModuleError("MLP: linear op \(i) needs \"name\", \"in\" and \"out\"")
                }
                return .linear(name: name, inFeatures: inF, outFeatures: outF, bias: item["bias"]?.boolValue ?? true)
            }
            guard let kind = Activation.Kind(rawValue: op) else { throw ModuleError("MLP: unknown op \"\(op)\" at position \(i)") }
            return .activation(kind)
        }
    }

    /// x: [..., in] -> [..., out]
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        var h = x
        for (name, _) in children { h = try layer(name).forward(h, ctx) }
        return h
    }
}

extension MLP {
    /// Width of the input of the first linear layer.
    public var inputWidth: Int {
        for op in ops { if case let .linear(_, inF, _, _) = op { return inF } }
        return 0
    }
}
