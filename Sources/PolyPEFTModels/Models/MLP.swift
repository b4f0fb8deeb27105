import PolyPEFTCore
import PolyPEFTIO

/// A feed-forward network described by an op list, as the golden cases and `polyctl` describe base models:
///
/// ```
/// [{"op": "linear", "name": "fc1", "in": 16, "out": 32, "bias": true}, {"op": "relu"}, {"op": "linear", ...}]
/// ```
/// Linear layers keep their given names (so PEFT's `target_modules` apply); activations are named `act<i>`. A dotted
/// name is a path, as in PyTorch: `"block.mix"` is a child `mix` of a plain `Module` `block`, created at the first
/// name that needs it, so its weight is `block.mix.weight` and `target_modules` `["mix"]` or `["block.mix"]` reach
/// it. The forward runs the ops in list order whatever the tree looks like.
public final class MLP: Module, Layer {
    /// One step of the network.
    public enum Op: Equatable, Sendable {
        case linear(name: String, inFeatures: Int, outFeatures: Int, bias: Bool)
        case activation(Activation.Kind)
    }

    public let ops: [Op]
    /// The path of each op's module below this one, split at the dots (`["block", "mix"]`), in op order.
    private let paths: [[String]]

    /// Builds the tree of `ops`. Throws `ModuleError` for a non-positive or mismatched width, and for a name that is
    /// empty, has an empty component (`"a..b"`), repeats another, or passes through a layer (`"fc1.x"` beside
    /// `"fc1"`, or `"act1"` beside the activation at position 1).
    public init(_ ops: [Op], using rng: inout some RandomNumberGenerator) throws {
        self.ops = ops
        paths = ops.enumerated().map { i, op in
            if case let .linear(name, _, _, _) = op { return name.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
            return ["act\(i)"]
        }
        super.init()
        var width: Int?
        for (i, op) in ops.enumerated() {
            switch op {
            case let .linear(name, inF, outF, bias):
                guard inF > 0, outF > 0 else { throw ModuleError("MLP: layer '\(name)' has non-positive size \(inF) -> \(outF)") }
                if let w = width, w != inF { throw ModuleError("MLP: layer '\(name)' takes \(inF) inputs but receives \(w)") }
                try insert(Linear(inF, outF, bias: bias, using: &rng), at: paths[i], name: name)
                width = outF
            case let .activation(kind):
                try insert(Activation(kind), at: paths[i], name: "act\(i)")
            }
        }
    }

    /// Adds `layer` at `path`, creating the plain modules on the way; throws where the path is taken or malformed.
    private func insert(_ layer: some Module & Layer, at path: [String], name: String) throws {
        guard !path.contains(where: \.isEmpty) else { throw ModuleError("MLP: layer name '\(name)' has an empty part") }
        var parent: Module = self
        for (depth, part) in path.dropLast().enumerated() {
            if let existing = parent.child(part) {
                guard !(existing is any Layer) else {
                    let prefix = path[...depth].joined(separator: ".")
                    throw ModuleError("MLP: layer '\(name)' would sit inside layer '\(prefix)'")
                }
                parent = existing
            } else {
                parent = parent.addChild(part, Module())
            }
        }
        if let existing = parent.child(path[path.count - 1]) {
            throw ModuleError(existing is any Layer ? "MLP: duplicate layer name '\(name)'"
                                                    : "MLP: layer '\(name)' has the name of the module holding '\(name).*'")
        }
        parent.addChild(path[path.count - 1], layer)
    }

    /// The module at `path` (its dotted name's parts), or nil.
    private func module(at path: [String]) -> Module? {
        var m: Module = self
        for part in path {
            guard let c = m.child(part) else { return nil }
            m = c
        }
        return m
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

    /// x: [..., in] -> [..., out]. Each op's layer is looked up by its path at every call, so an adapter that
    /// replaced it (`replace(path:with:)`) runs in its place.
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        var h = x
        for path in paths {
            guard let layer = module(at: path) as? any Layer else {
                throw ModuleError("MLP: no layer at '\(path.joined(separator: "."))'")
            }
            h = try layer.forward(h, ctx)
        }
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
