/// Reductions. Backward broadcasts the gradient back over the reduced axes.
extension Variable {
    /// Sum over `axes` (nil: all);  dx = g broadcast to x's shape.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Variable {
        let xs = shape
        let ax = try value.reductionAxes(axes, "sum")
        let keptShape = Tensor.reducedShape(xs, ax, keepDims: true)
        return Variable.record(try value.sum(axes: ax, keepDims: keepDims), [self]) { g, _ in
            [try g.reshaped(keptShape).expanded(to: xs)]
        }
    }

    /// Mean over `axes` (nil: all);  dx = g / n broadcast.
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Variable {
        let ax = try value.reductionAxes(axes, "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return try sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }
}
