/// LayerNorm and RMSNorm over the last axis as row kernels: one pass to reduce a row, one to write it, 8 lanes at a
/// time, rows split among the threads; the backward recomputes `xhat` from the saved per-row statistics. The
/// composed forms in Variable+Norms.swift (`layerNormReference`, `rmsNormReference`) are the oracles.
///
/// ```
/// LayerNorm  x: [rows, D]   mu = mean(x), rstd = 1/sqrt(mean((x - mu)^2) + eps), xhat = (x - mu) rstd
///            y = xhat * gamma + beta
///            dxhat = g * gamma,  dx = (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) rstd
///            dgamma = sum_rows g xhat,  dbeta = sum_rows g
/// RMSNorm    r = 1/sqrt(mean(x^2) + eps),  y = x r gamma
///            gg = g * gamma,  dx = r (gg - x r^2 mean(gg x)),  dgamma = sum_rows g x r
/// ```
/// The column sums of the backward are taken per worker and added at the end.
package enum NormKernels {
    /// Per-row statistics a forward saves for its backward: the mean (LayerNorm; 0 for RMSNorm) and the reciprocal
    /// standard deviation (or RMS), one each per row.
    package struct RowStatistics: Sendable {
        package var mean: [Float]
        package var rstd: [Float]
    }

    /// Splits `rows` rows of `d` features among the threads (from `Parallel.elementwiseThreshold` elements) and
    /// calls `body(rows, worker)`; `worker` is below `min(Parallel.currentThreads, rows)`.
    @inline(__always)
    static func forEachRowPart(rows: Int, d: Int, _ body: (Range<Int>, Int) -> Void) {
        let workers = rows * d < Parallel.elementwiseThreshold ? 1 : Swift.min(Parallel.currentThreads, rows)
        Parallel.run(workers: workers) { w in body(Parallel.part(w, of: workers, count: rows), w) }
    }

    /// LayerNorm (`rms == false`) or RMSNorm (`rms == true`; `bias` must be nil) of a contiguous `[rows, d]` input.
    package static func forward(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, rms: Bool)
        -> (y: Tensor, stats: RowStatistics) {
        let d = x.shape.last ?? 0
        let rows = d == 0 ? 0 : x.count / d
        var y = Tensor.uninitializedScalars(x.count)
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        let gamma = weight ?? Tensor.ones([d]), beta = bias ?? Tensor.zeros([d])
        if rows > 0 {
            Tensor.withBuffers(x, gamma, beta, writing: &y, &mean, &rstd) { px, pg, pb, py, pm, pr in
                let (xs, gs, bs) = (px.baseAddress!, pg.baseAddress!, pb.baseAddress!)
                let (ys, ms, rs) = (py.baseAddress!, pm.baseAddress!, pr.baseAddress!)
                forEachRowPart(rows: rows, d: d) { part, _ in
                    for r in part {
                        let xr = xs + r * d, yr = ys + r * d
                        let mu = rms ? 0 : rowSum8(xr, d) / Float(d)
                        let variance = rowCenteredSquares8(xr, d, mu) / Float(d)
                        let inv = 1 / (variance + eps).squareRoot()
                        ms[r] = mu
                        rs[r] = inv
                        rowAffine8(xr, yr, d, mu: mu, rstd: inv, gamma: gs, beta: bs)
                    }
                }
            }
        }
        return (Tensor(y, shape: x.shape), RowStatistics(mean: mean, rstd: rstd))
    }

    /// The backward of `forward`: `(dx, dgamma, dbeta)`, each computed only when asked for.
    package static func backward(_ g: Tensor, _ x: Tensor, stats: RowStatistics, weight: Tensor?, rms: Bool,
                                 needX: Bool, needWeight: Bool, needBias: Bool) -> (dx: Tensor?, dweight: Tensor?, dbias: Tensor?) {
        let d = x.shape.last ?? 0
        let rows = d == 0 ? 0 : x.count / d
        let gamma = weight ?? Tensor.ones([d])
        var dx = needX ? Tensor.uninitializedScalars(x.count) : []
        let slots = Swift.max(1, Swift.min(Parallel.currentThreads, rows))
        // Per-worker column sums: [slots][d] for dgamma and for dbeta.
        var dgammaParts = [Float](repeating: 0, count: needWeight ? slots * d : 0)
        var dbetaParts = [Float](repeating: 0, count: needBias ? slots * d : 0)
        if rows > 0 {
            Tensor.withBuffers(g, x, gamma, writing: &dx, &dgammaParts, &dbetaParts) { pg, px, pgamma, pdx, pdg, pdb in
                let (gs, xs, gammas) = (pg.baseAddress!, px.baseAddress!, pgamma.baseAddress!)
                // (An empty array's buffer may still have an address: the flags decide.)
                let dxs = needX ? pdx.baseAddress : nil
                let dgs = needWeight ? pdg.baseAddress : nil, dbs = needBias ? pdb.baseAddress : nil
                forEachRowPart(rows: rows, d: d) { part, w in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * d) { scratch in
                        let xhat = scratch.baseAddress!, dxhat = xhat + d
                        for r in part {
                            let gr = gs + r * d, xr = xs + r * d
                            let (mu, inv) = (stats.mean[r], stats.rstd[r])
                            rowBackwardPrepare8(gr, xr, d, mu: mu, rstd: inv, gamma: gammas, xhat: xhat, dxhat: dxhat)
                            if let dgs { rowAccumulateProduct8(dgs + w * d, gr, xhat, d) }
                            if let dbs { rowAccumulate8(dbs + w * d, gr, d) }
                            guard let dxs else { continue }
                            let m1 = rms ? 0 : rowSum8(dxhat, d) / Float(d)
                            let m2 = dot(dxhat, xhat, count: d) / Float(d)
                            rowInputGradient8(dxs + r * d, dxhat, xhat, d, m1: m1, m2: m2, rstd: inv)
                        }
                    }
                }
            }
        }
        func columnSum(_ parts: [Float]) -> Tensor {
            var out = [Float](repeating: 0, count: d)
            for s in 0..<slots { for j in 0..<d { out[j] += parts[s * d + j] } }
            return Tensor(out, shape: [d])
        }
        return (needX ? Tensor(dx, shape: x.shape) : nil, needWeight ? columnSum(dgammaParts) : nil,
                needBias ? columnSum(dbetaParts) : nil)
    }

    /// `sum_j (x[j] - mu)^2` over a row.
    @inline(__always)
    static func rowCenteredSquares8(_ x: UnsafePointer<Float>, _ n: Int, _ mu: Float) -> Float {
        var acc = SIMD8<Float>()
        let m = SIMD8<Float>(repeating: mu)
        var j = 0
        while j + 8 <= n { let c = load8(x + j) - m; acc = fma8(acc, c, c); j += 8 }
        var s = acc.sum()
        while j < n { let c = x[j] - mu; s += c * c; j += 1 }
        return s
    }

    /// `y[j] = (x[j] - mu) rstd gamma[j] + beta[j]` over a row (gamma, beta optional).
    @inline(__always)
    static func rowAffine8(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, mu: Float, rstd: Float,
                           gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) {
        let m = SIMD8<Float>(repeating: mu), s = SIMD8<Float>(repeating: rstd)
        var j = 0
        while j + 8 <= n { store8(fma8(load8(beta + j), (load8(x + j) - m) * s, load8(gamma + j)), y + j); j += 8 }
        while j < n { y[j] = (x[j] - mu) * rstd * gamma[j] + beta[j]; j += 1 }
    }

    /// `xhat[j] = (x[j] - mu) rstd`, `dxhat[j] = g[j] gamma[j]` over a row.
    @inline(__always)
    static func rowBackwardPrepare8(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, mu: Float, rstd: Float,
                                    gamma: UnsafePointer<Float>, xhat: UnsafeMutablePointer<Float>,
                                    dxhat: UnsafeMutablePointer<Float>) {
        let m = SIMD8<Float>(repeating: mu), s = SIMD8<Float>(repeating: rstd)
        var j = 0
        while j + 8 <= n {
            store8((load8(x + j) - m) * s, xhat + j)
            store8(load8(g + j) * load8(gamma + j), dxhat + j)
            j += 8
        }
        while j < n {
            xhat[j] = (x[j] - mu) * rstd
            dxhat[j] = g[j] * gamma[j]
            j += 1
        }
    }

    /// `dx[j] = (dxhat[j] - m1 - xhat[j] m2) rstd` over a row.
    @inline(__always)
    static func rowInputGradient8(_ dx: UnsafeMutablePointer<Float>, _ dxhat: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>,
                                  _ n: Int, m1: Float, m2: Float, rstd: Float) {
        let a = SIMD8<Float>(repeating: m1), b = SIMD8<Float>(repeating: m2), s = SIMD8<Float>(repeating: rstd)
        var j = 0
        while j + 8 <= n { store8((load8(dxhat + j) - a - load8(xhat + j) * b) * s, dx + j); j += 8 }
        while j < n { dx[j] = (dxhat[j] - m1 - xhat[j] * m2) * rstd; j += 1 }
    }

    /// `acc[j] += a[j] b[j]` over a row.
    @inline(__always)
    static func rowAccumulateProduct8(_ acc: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
        var j = 0
        while j + 8 <= n { store8(fma8(load8(acc + j), load8(a + j), load8(b + j)), acc + j); j += 8 }
        while j < n { acc[j] += a[j] * b[j]; j += 1 }
    }

    /// `acc[j] += a[j]` over a row.
    @inline(__always)
    static func rowAccumulate8(_ acc: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ n: Int) {
        var j = 0
        while j + 8 <= n { store8(load8(acc + j) + load8(a + j), acc + j); j += 8 }
        while j < n { acc[j] += a[j]; j += 1 }
    }
}
