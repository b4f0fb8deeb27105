/// A tensor in a recorded computation: its value and, when it depends on something that requires gradients, the
/// graph node through which `backward()` sends gradients.
///
/// Operations on `Variable`s compute their value eagerly and record a node only when at least one input requires
/// gradients, so inference on constants (and on frozen parameters read through a non-recording `Context`) records
/// nothing. Each operation's forward and hand-written backward sit side by side in the `Variable+*.swift` files.
public struct Variable {
    /// The computed value.
    public let value: Tensor
    /// The graph node, nil for constants.
    let node: GradNode?

    /// A constant: no gradient flows to it.
    public init(_ value: Tensor) {
        self.value = value
        self.node = nil
    }

    /// A leaf that collects its own gradient (read it with `grad` after `backward()`), e.g. an input `x` whose
    /// gradient is wanted.
    public init(_ value: Tensor, requiresGrad: Bool) {
        self.value = value
        self.node = requiresGrad ? GradNode(leafShape: value.shape, parameter: nil) : nil
    }

    init(value: Tensor, node: GradNode?) {
        self.value = value
        self.node = node
    }

    /// The value's shape.
    public var shape: [Int] { value.shape }
    /// Whether a gradient can flow back from this value.
    public var requiresGrad: Bool { node != nil }
    /// The gradient accumulated by `backward()` into this leaf (nil for non-leaves and before backward).
    public var grad: Tensor? { node?.leafGrad }

    /// Records the result of an operation: `backward(outputGrad, needs)` returns one gradient per input (nil where
    /// `needs[i]` is false or the input gets none). No node is recorded when no input requires gradients.
    package static func record(_ value: Tensor, _ inputs: [Variable],
                       _ backward: @escaping (_ grad: Tensor, _ needs: [Bool]) throws -> [Tensor?]) -> Variable {
        guard inputs.contains(where: { $0.node != nil }) else { return Variable(value) }
        return Variable(value: value, node: GradNode(shape: value.shape, inputs: inputs.map(\.node), backward: backward))
    }
}

/// A node of the recorded graph. Interior nodes hold their inputs and backward closure until `backward()` has used
/// them (then both are released, so saved activations do not outlive the step); leaves hold where the gradient goes.
final class GradNode {
    let shape: [Int]
    private(set) var inputs: [GradNode?]
    var backwardFn: ((Tensor, [Bool]) throws -> [Tensor?])?
    /// For parameter leaves: the parameter whose `grad` accumulates.
    let parameter: Parameter?
    /// For leaves that are not parameters: the accumulated gradient.
    var leafGrad: Tensor?
    let isLeaf: Bool

    init(shape: [Int], inputs: [GradNode?], backward: @escaping (Tensor, [Bool]) throws -> [Tensor?]) {
        self.shape = shape
        self.inputs = inputs
        self.backwardFn = backward
        self.parameter = nil
        self.isLeaf = false
    }

    init(leafShape: [Int], parameter: Parameter?) {
        self.shape = leafShape
        self.inputs = []
        self.backwardFn = nil
        self.parameter = parameter
        self.isLeaf = true
    }

    /// Drops what backward needed.
    func release() {
        backwardFn = nil
        inputs = []
    }
}
