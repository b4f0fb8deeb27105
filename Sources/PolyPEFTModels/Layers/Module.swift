import PolyPEFTCore
import PolyPEFTIO

/// A node of the model tree: named child modules and named parameters, in declaration order.
///
/// Names are explicit (no reflection), so `namedParameters()` yields PyTorch's dotted `state_dict` names
/// (`encoder.block.0.layer.0.SelfAttention.q.weight`) that PEFT's `target_modules` and every safetensors key rely on,
/// and `replace(path:with:)` swaps a submodule for an adapter that wraps it.
open class Module {
    public private(set) var children: [(name: String, module: Module)] = []
    public private(set) var parameters: [(name: String, parameter: Parameter)] = []

    public init() {}

    /// Registers a child under `name` and returns it.
    @discardableResult
    public func addChild<M: Module>(_ name: String, _ module: M) -> M {
        precondition(!children.contains { $0.name == name } && !parameters.contains { $0.name == name },
                     "Module: duplicate name '\(name)'")
        children.append((name, module))
        return module
    }

    /// Registers a parameter under `name` and returns it.
    @discardableResult
    public func addParameter(_ name: String, _ parameter: Parameter) -> Parameter {
        precondition(!children.contains { $0.name == name } && !parameters.contains { $0.name == name },
                     "Module: duplicate name '\(name)'")
        parameters.append((name, parameter))
        return parameter
    }

    /// The direct child called `name`.
    public func child(_ name: String) -> Module? { children.first { $0.name == name }?.module }

    /// The direct child called `name` as a `T`. A missing child, or one of another type (a sublayer a model reads
    /// in a role, such as BERT's `attention`, replaced by something that cannot play it), is a `ModuleError` naming
    /// both types: models call their sublayers through this, so a bad replacement fails with a message, not a trap.
    public func child<T>(_ name: String, as type: T.Type) throws -> T {
        guard let c = child(name) else { throw ModuleError("\(Self.self) has no child '\(name)'") }
        guard let typed = c as? T else {
            throw ModuleError("\(Self.self).\(name) is a \(Swift.type(of: c)) where a \(T.self) is expected: this sublayer "
                + "cannot be replaced or wrapped (adapters wrap layers that map one tensor to another)")
        }
        return typed
    }

    /// The direct child called `name` as a `Layer` (`replace` keeps layers layers, so this fails only on a missing
    /// name).
    public func layer(_ name: String) throws -> any Layer { try child(name, as: (any Layer).self) }

    /// Every module below and including this one, with dotted paths (`""` for self), depth first in order.
    public func namedModules(prefix: String = "") -> [(path: String, module: Module)] {
        var out: [(String, Module)] = [(prefix, self)]
        for (name, m) in children { out += m.namedModules(prefix: prefix.isEmpty ? name : prefix + "." + name) }
        return out
    }

    /// Every parameter with its dotted name, as PyTorch's `named_parameters()`.
    open func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        var out = parameters.map { (prefix.isEmpty ? $0.name : prefix + "." + $0.name, $0.parameter) }
        for (name, m) in children { out += m.namedParameters(prefix: prefix.isEmpty ? name : prefix + "." + name) }
        return out
    }

    /// The module at a dotted path (`""` is self).
    public func module(at path: String) -> Module? {
        if path.isEmpty { return self }
        var m: Module = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard let c = m.child(String(part)) else { return nil }
            m = c
        }
        return m
    }

    /// Swaps the module at `path` for `replacement` (how adapters are injected). A layer can only be replaced by a
    /// layer.
    public func replace(path: String, with replacement: Module) throws {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let last = parts.last, !path.isEmpty,
              let parent = module(at: parts.dropLast().joined(separator: ".")),
              let i = parent.children.firstIndex(where: { $0.name == last }) else {
            throw ModuleError("replace: no module at '\(path)'")
        }
        if parent.children[i].module is any Layer, !(replacement is any Layer) {
            throw ModuleError("replace: '\(path)' is a layer and can only be replaced by a layer, not \(type(of: replacement))")
        }
        parent.children[i].module = replacement
    }

    /// Sets `requiresGrad` on every parameter whose dotted name satisfies `predicate`.
    public func setRequiresGrad(_ value: Bool, where predicate: (String) -> Bool = { _ in true }) {
        for (name, p) in namedParameters() where predicate(name) { p.requiresGrad = value }
    }

    /// Freezes every parameter (or those whose name satisfies `predicate`).
    public func freeze(where predicate: (String) -> Bool = { _ in true }) { setRequiresGrad(false, where: predicate) }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for (_, p) in namedParameters() { p.zeroGrad() } }

    /// Parameters with `requiresGrad`, by name.
    public func trainableParameters() -> [(name: String, parameter: Parameter)] {
        namedParameters().filter { $0.parameter.requiresGrad }
    }

    /// Every parameter once, under the first of its names (a tied embedding is registered under several).
    public func uniqueNamedParameters() -> [(name: String, parameter: Parameter)] {
        namedParameters().uniqueObjects { $0.parameter }
    }

    /// Counts like PEFT's `print_trainable_parameters()`:
    /// `trainable params: 12,288 || all params: 1,062,912 || trainable%: 1.1561`.
    public func parameterSummary() -> String { Module.parameterSummary(uniqueNamedParameters().map(\.parameter)) }

    /// The scalars of `parameters` that train and in all (each parameter counted once by the caller).
    public static func parameterCounts(_ parameters: [Parameter]) -> (trainable: Int, all: Int) {
        var all = 0, trainable = 0
        for p in parameters {
            all += p.count
            if p.requiresGrad { trainable += p.count }
        }
        return (trainable, all)
    }

    /// The `print_trainable_parameters()` line for `parameters` (each counted once by the caller).
    public static func parameterSummary(_ parameters: [Parameter]) -> String {
        let (trainable, all) = parameterCounts(parameters)
        let pct = all == 0 ? 0 : 100 * Double(trainable) / Double(all)
        return "trainable params: \(groupThousands(trainable)) || all params: \(groupThousands(all)) || trainable%: \(formatFixed(pct, digits: 4))"
    }
}

/// A module that maps one tensor to another: the kind adapters can wrap and replace.
public protocol Layer: Module {
    func forward(_ x: Variable, _ ctx: Context) throws -> Variable
}

extension Layer {
    public func callAsFunction(_ x: Variable, _ ctx: Context) throws -> Variable { try forward(x, ctx) }
}

/// A layer that can make an independent copy of itself: the same configuration, new parameters holding copies of
/// its values (PyTorch's `deepcopy` of a module; LN tuning trains such a copy of each norm).
public protocol CopyableLayer: Layer {
    func copied() -> Self
}


/// The first `limit` names joined by commas, `", ..."` when there are more (error messages listing known names).
public func namesPreview(_ names: [String], limit: Int = 8) -> String {
    names.prefix(limit).joined(separator: ", ") + (names.count > limit ? ", ..." : "")
}

/// `1234567` -> `"1,234,567"`.
public func groupThousands(_ n: Int) -> String {
    let s = String(Swift.abs(n))
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}

/// Fixed-point formatting without Foundation: `formatFixed(1.15612, digits: 4) == "1.1561"`. Values too large for
/// fixed point at `digits` (|x| * 10^digits >= 2^63) are written as Swift writes them (`1e+30`).
public func formatFixed(_ x: Double, digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (Swift.abs(x) * scale).rounded()
    guard r < 0x1p63 else { return "\(x)" }
    let whole = Int(r / scale), frac = Int(r.truncatingRemainder(dividingBy: scale))
    let fs = String(frac)
    let padded = String(repeating: "0", count: Swift.max(0, digits - fs.count)) + fs
    return (x < 0 && r != 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + padded : "")
}
