/// A trainable (or frozen) tensor shared by reference between a module, the optimizer, and adapters.
///
/// Its name is not stored: names come from the module tree (`namedParameters()`), as in PyTorch.
public final class Parameter {
    /// The current value.
    public var value: Tensor
    /// The gradient accumulated by `backward()`; nil until the first backward and after `zeroGrad()`.
    public var grad: Tensor?
    /// Frozen parameters (false) get no gradient, and backward skips work only they would need.
    public var requiresGrad: Bool

    public init(_ value: Tensor, requiresGrad: Bool = true) {
        self.value = value
        self.requiresGrad = requiresGrad
    }

    /// The parameter as a graph input: a recording leaf when `recording` and `requiresGrad`, else a constant.
    public func variable(recording: Bool = true) -> Variable {
        recording && requiresGrad
            ? Variable(value: value, node: GradNode(leafShape: value.shape, parameter: self))
            : Variable(value)
    }

    /// Forgets the accumulated gradient.
    public func zeroGrad() { grad = nil }

    /// Number of scalars.
    public var count: Int { value.count }
}
