/// Softmax and log-softmax along an axis, each one primitive with a fused backward.
extension Variable {
    /// ```
    /// y = softmax(x)
    /// dx = y * (g - sum(g * y, axis))
    /// ```
    public func softmax(axis: Int = -1) throws -> Variable {
        let a = try Tensor.normalizeAxis(axis, rank: value.rank, "softmax")
        let y = try value.softmax(axis: a)
        return Variable.record(y, [self]) { g, _ in
            let gy = try g * y
            return [try y * (g - (try gy.sum(axes: [a], keepDims: true)))]
        }
    }

    /// ```
    /// y = x - logsumexp(x)
    /// dx = g - softmax(x) * sum(g, axis)
    /// ```
    public func logSoftmax(axis: Int = -1) throws -> Variable {
        let a = try Tensor.normalizeAxis(axis, rank: value.rank, "log_softmax")
        let y = try value.logSoftmax(axis: a)
        return Variable.record(y, [self]) { g, _ in
            [try g - (try y.exp() * (try g.sum(axes: [a], keepDims: true)))]
        }
    }
}
