import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// The plain-loop MLP behind `SyntheticTasks`: composes a task's weights from skill factors and samples data.
///
/// Sizes are tiny (in 32, hidden 64, out 8), so everything is written as scalar loops over row-major `[Float]`
/// and depends on no matmul API.
struct SyntheticMLP {
    /// Row-major weights of one task: `w1` [hidden, in], `b1` [hidden], `w2` [out, hidden], `b2` [out].
    struct Weights {
        var w1: [Float], b1: [Float], w2: [Float], b2: [Float]
    }

    let base: Weights
    let inputDim: Int, hiddenDim: Int, outputDim: Int
    let skills: [[String: Tensor]]
    let composition: SyntheticTasks.Composition

    init(base: [String: Tensor], skills: [[String: Tensor]], composition: SyntheticTasks.Composition) {
        let w1 = base["fc1.weight"]!, w2 = base["fc2.weight"]!
        self.base = Weights(w1: w1.scalars, b1: base["fc1.bias"]!.scalars, w2: w2.scalars, b2: base["fc2.bias"]!.scalars)
        hiddenDim = w1.shape[0]
        inputDim = w1.shape[1]
        outputDim = w2.shape[0]
        self.skills = skills
        self.composition = composition
    }

    /// The weights of a task using `set` (empty: the base weights).
    ///
    /// ```
    /// averageDeltas:  W_t = W + (1/|S|) sum_s U_s V_s
    /// averageFactors: W_t = W + ((1/|S|) sum_s U_s) ((1/|S|) sum_s V_s)
    /// ```
    func taskWeights(_ set: [Int]) -> Weights {
        var w = base
        guard !set.isEmpty else { return w }
        let inv = 1 / Float(set.count)
        for layer in ["fc1", "fc2"] {
            var delta: [Float]
            switch composition {
            case .averageDeltas:
                delta = [Float](repeating: 0, count: skills[set[0]]["\(layer).U"]!.shape[0] * skills[set[0]]["\(layer).V"]!.shape[1])
                for s in set {
                    let p = SyntheticMLP.product(skills[s]["\(layer).U"]!, skills[s]["\(layer).V"]!)
                    for i in delta.indices { delta[i] += inv * p[i] }
                }
            case .averageFactors:
                let u0 = skills[set[0]]["\(layer).U"]!, v0 = skills[set[0]]["\(layer).V"]!
                var u = [Float](repeating: 0, count: u0.count), v = [Float](repeating: 0, count: v0.count)
                for s in set {
                    for (i, e) in skills[s]["\(layer).U"]!.scalars.enumerated() { u[i] += inv * e }
                    for (i, e) in skills[s]["\(layer).V"]!.scalars.enumerated() { v[i] += inv * e }
                }
                delta = SyntheticMLP.product(Tensor(u, shape: u0.shape), Tensor(v, shape: v0.shape))
            }
            if layer == "fc1" {
                for i in delta.indices { w.w1[i] += delta[i] }
            } else {
                for i in delta.indices { w.w2[i] += delta[i] }
            }
        }
        return w
    }

    /// `y = W2 relu(W1 x + b1) + b2`. // x: [in] -> [out]
    func forward(_ x: [Float], weights w: Weights) -> [Float] {
        var h = [Float](repeating: 0, count: hiddenDim)
        for j in 0..<hiddenDim {
            var acc = w.b1[j]
            for i in 0..<inputDim { acc += w.w1[j * inputDim + i] * x[i] }
            h[j] = Swift.max(acc, 0)
        }
        var y = [Float](repeating: 0, count: outputDim)
        for o in 0..<outputDim {
            var acc = w.b2[o]
            for j in 0..<hiddenDim { acc += w.w2[o * hiddenDim + j] * h[j] }
            y[o] = acc
        }
        return y
    }

    /// `perTask` samples for each task (task-major order): `x ~ N(0, I)`, `y = f_t(x) + noiseStd * N(0, I)`.
    func sample(taskSkills: [[Int]], names: [String], perTask: Int, noiseStd: Float,
                using rng: inout Xoshiro256) -> MultitaskDataset {
        let n = taskSkills.count * perTask
        let xs = Tensor.normal([n, inputDim], using: &rng).scalars                  // [N, in]
        let noise = Tensor.normal([n, outputDim], std: noiseStd, using: &rng).scalars // [N, out]
        var ys = [Float](repeating: 0, count: n * outputDim)                          // [N, out]
        var ids = [Int](repeating: 0, count: n)
        for (t, set) in taskSkills.enumerated() {
            let w = taskWeights(set)
            for k in 0..<perTask {
                let i = t * perTask + k
                ids[i] = t
                let y = forward(Array(xs[(i * inputDim)..<((i + 1) * inputDim)]), weights: w)
                for o in 0..<outputDim { ys[i * outputDim + o] = y[o] + noise[i * outputDim + o] }
            }
        }
        return MultitaskDataset(unchecked: Tensor(xs, shape: [n, inputDim]), targets: Tensor(ys, shape: [n, outputDim]),
                                taskIDs: ids, taskNames: names)
    }

    /// Row-major `u v` for `u` [m, r], `v` [r, n]. // -> [m * n]
    static func product(_ u: Tensor, _ v: Tensor) -> [Float] {
        let m = u.shape[0], r = u.shape[1], n = v.shape[1]
        let a = u.scalars, b = v.scalars
        var out = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for k in 0..<r {
                let aik = a[i * r + k]
                for j in 0..<n { out[i * n + j] += aik * b[k * n + j] }
            }
        }
        return out
    }

    /// `sqrt(sum x^2)`.
    static func frobenius(_ x: [Float]) -> Float { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }
}
