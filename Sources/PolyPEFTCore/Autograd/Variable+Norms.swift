/// Normalisation layers' maths over the last axis, each one primitive with a fused backward.
extension Variable {
    /// LayerNorm over the last axis (D features):
    ///
    /// ```
    /// mu = mean(x), var = mean((x - mu)^2), xhat = (x - mu) / sqrt(var + eps)
    /// y = xhat * gamma + beta
    /// dxhat = g * gamma
    /// dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
    /// dgamma = sum(g * xhat), dbeta = sum(g)      // over all leading axes
    /// ```
    /// Computed by the fused row kernels of Tensor+Norms.swift (`NormKernels`); `layerNormReference` below is the
    /// same maths composed of tensor operations, the oracle.
    public func layerNorm(weight: Variable?, bias: Variable?, eps: Float) throws -> Variable {
        let d = shape.last ?? 0
        if let weight, weight.shape != [d] { throw TensorError("layer_norm", "weight \(fmt(weight.shape)) for input \(fmt(shape))") }
        if let bias, bias.shape != [d] { throw TensorError("layer_norm", "bias \(fmt(bias.shape)) for input \(fmt(shape))") }
        let x = value, gamma = weight?.value
        let (y, stats) = NormKernels.forward(x, weight: gamma, bias: bias?.value, eps: eps, rms: false)
        let inputs = [self] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
        let (hasWeight, hasBias) = (weight != nil, bias != nil)
        return Variable.record(y, inputs) { g, needs in
            guard g.shape == y.shape else {
                throw TensorError("layer_norm backward", "gradient \(fmt(g.shape)) does not match the output \(fmt(y.shape))")
            }
            let r = NormKernels.backward(g, x, stats: stats, weight: gamma, rms: false, needX: needs[0],
                                         needWeight: hasWeight && needs[1], needBias: hasBias && needs[needs.count - 1])
            return [r.dx] + (hasWeight ? [r.dweight] : []) + (hasBias ? [r.dbias] : [])
        }
    }

    /// `layerNorm` composed of tensor operations (mean, subtract, square, ...): the oracle of the fused kernels.
    public func layerNormReference(weight: Variable?, bias: Variable?, eps: Float) throws -> Variable {
        let d = shape.last ?? 0
        if let weight, weight.shape != [d] { throw TensorError("layer_norm", "weight \(fmt(weight.shape)) for input \(fmt(shape))") }
        if let bias, bias.shape != [d] { throw TensorError("layer_norm", "bias \(fmt(bias.shape)) for input \(fmt(shape))") }
        let mu = try value.mean(axes: [-1], keepDims: true)
        let centered = try value - mu
        let rstd = (try centered.squared().mean(axes: [-1], keepDims: true) + eps).pow(-0.5)
        let xhat = try centered * rstd
        var y = xhat
        if let weight { y = try y * weight.value }
        if let bias { y = try y + bias.value }
        let gamma = weight?.value
        let inputs = [self] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
        let hasWeight = weight != nil
        return Variable.record(y, inputs) { g, needs in
            var dxhat = g
            if let gamma { dxhat = try g * gamma }
            var out: [Tensor?] = []
            if needs[0] {
                let m1 = try dxhat.mean(axes: [-1], keepDims: true)
                let m2 = try (try dxhat * xhat).mean(axes: [-1], keepDims: true)
                out.append(try (try (dxhat - m1) - (try xhat * m2)) * rstd)
            } else { out.append(nil) }
            let lead = Array(0..<(g.rank - 1))
            if hasWeight { out.append(needs[out.count] ? try (try g * xhat).sum(axes: lead) : nil) }
            if out.count < needs.count { out.append(needs[out.count] ? try g.sum(axes: lead) : nil) }
            return out
        }
    }

    /// T5's RMS norm over the last axis (no mean subtraction, no bias):
    ///
    /// ```
    /// r = 1 / sqrt(mean(x^2) + eps), y = x * r * gamma
    /// dx = r * (g*gamma - x * r^2 * mean(g*gamma * x)),  dgamma = sum(g * x * r)
    /// ```
    public func rmsNorm(weight: Variable, eps: Float) throws -> Variable {
        let d = shape.last ?? 0
        guard weight.shape == [d] else { throw TensorError("rms_norm", "weight \(fmt(weight.shape)) for input \(fmt(shape))") }
        let x = value, gamma = weight.value
        let (y, stats) = NormKernels.forward(x, weight: gamma, bias: nil, eps: eps, rms: true)
        return Variable.record(y, [self, weight]) { g, needs in
            guard g.shape == y.shape else {
                throw TensorError("rms_norm backward", "gradient \(fmt(g.shape)) does not match the output \(fmt(y.shape))")
            }
            let r = NormKernels.backward(g, x, stats: stats, weight: gamma, rms: true, needX: needs[0],
                                         needWeight: needs[1], needBias: false)
            return [r.dx, r.dweight]
        }
    }

    /// `rmsNorm` composed of tensor operations: the oracle of the fused kernels.
    public func rmsNormReference(weight: Variable, eps: Float) throws -> Variable {
        let d = shape.last ?? 0
        guard weight.shape == [d] else { throw TensorError("rms_norm", "weight \(fmt(weight.shape)) for input \(fmt(shape))") }
        let x = value, gamma = weight.value
        let r = (try x.squared().mean(axes: [-1], keepDims: true) + eps).pow(-0.5)
        let xr = try x * r
        return Variable.record(try xr * gamma, [self, weight]) { g, needs in
            let gg = try g * gamma
            let dx = needs[0] ? try (try gg - (try x * (try r.squared() * (try (try gg * x).mean(axes: [-1], keepDims: true))))) * r : nil
            let dgamma = needs[1] ? try (try g * xr).sum(axes: Array(0..<(g.rank - 1))) : nil
            return [dx, dgamma]
        }
    }

    /// Inverted dropout with a mask drawn from `rng`: `y = x * mask / (1 - p)`, `dx = g * mask / (1 - p)`.
    public func dropout(p: Float, using rng: inout Xoshiro256) throws -> Variable {
        guard p >= 0 && p < 1 else { throw TensorError("dropout", "probability \(p) outside [0, 1)") }
        if p == 0 { return self }
        let mask = Tensor.dropoutMask(shape, p: p, using: &rng)
        return Variable.record(try value * mask, [self]) { g, _ in [try g * mask] }
    }
}
