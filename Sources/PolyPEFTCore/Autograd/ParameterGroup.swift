/// Parameters that share optimisation hyper-parameters (Poly's router learns faster than its skills, e.g. 1e-1
/// against 1e-3). Parameters are named: optimizer state is keyed by name so it can be saved and resumed.
public struct ParameterGroup {
    public var name: String
    public var parameters: [(name: String, parameter: Parameter)]
    public var learningRate: Float
    public var weightDecay: Float

    public init(name: String = "default", parameters: [(name: String, parameter: Parameter)],
                learningRate: Float, weightDecay: Float = 0) {
        self.name = name
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }
}

/// Clips gradients in place so that their global L2 norm is at most `maxNorm`; returns the norm before clipping.
///
/// ```
/// total = sqrt(sum_p ||grad_p||^2);  if total > maxNorm: grad_p *= maxNorm / (total + 1e-6)
/// ```
@discardableResult
public func clipGradNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var sq: Double = 0
    for p in parameters { if let g = p.grad { g.withContiguousBuffer { b in for v in b { sq += Double(v) * Double(v) } } } }
    let total = Float(sq.squareRoot())
    if total > maxNorm {
        let s = maxNorm / (total + 1e-6)
        for p in parameters where p.grad != nil { p.grad = p.grad! * s }
    }
    return total
}
