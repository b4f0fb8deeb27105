import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// A seeded, built-in multitask regression problem with a known task x skill structure, for demos and tests.
///
/// A frozen random base MLP (PyTorch layout) maps `x` to `y`; each of `nSkills` latent skills is a low-rank change
/// of both layers; each task uses a few skills, and its targets come from the base weights shifted by the mean of its
/// skills' changes:
///
/// ```
/// base:     y = fc2(relu(fc1(x)))        fc1: W1 [hidden, in], b1 [hidden];  fc2: W2 [out, hidden], b2 [out]
/// skill s:  dW1_s = U1_s V1_s            U1_s [hidden, r], V1_s [r, in],  ||dW1_s||_F = skillScale * ||W1||_F
///           dW2_s = U2_s V2_s            U2_s [out, r],    V2_s [r, hidden], ||dW2_s||_F = skillScale * ||W2||_F
/// task t with skill set S_t (composition .averageDeltas, the default):
///           W1_t = W1 + mean_{s in S_t} dW1_s,   W2_t = W2 + mean_{s in S_t} dW2_s
///           y = W2_t relu(W1_t x + b1) + b2 + noiseStd * eps,     x ~ N(0, I),  eps ~ N(0, I)
/// with .averageFactors instead: dW_t = (mean_s U_s)(mean_s V_s) for each layer.
/// ```
/// `.averageDeltas` is exactly what a Poly layer mixing skill *outputs* computes with routing weights `1/|S_t|`;
/// `.averageFactors` is exactly what PEFT's Poly (mixing LoRA *parameters*) computes with rank `r = skillRank`.
///
/// Allocation: tasks `task00 ..< task{nSkills}` each use one skill (`task0s` uses skill `s`), so every skill is
/// identifiable; the remaining training tasks use distinct random sets of 2-3 skills; held-out tasks use further
/// 2-3 skill sets that no training task uses. Everything is drawn from `seed` alone; each split has its own
/// derived stream, so changing one split's size leaves the base model, skills and other splits unchanged.
public struct SyntheticTasks: Sendable {
    /// How skills combine within a task (see the type's documentation).
    public enum Composition: String, Sendable, Equatable, CaseIterable {
        /// `dW_t = mean_s U_s V_s` (matches mixing skill outputs).
        case averageDeltas
        /// `dW_t = (mean_s U_s)(mean_s V_s)` (matches PEFT Poly's parameter mixing).
        case averageFactors
    }

    /// Sizes and seeds. The defaults give the `polyctl train` demo: 18 training tasks over 6 skills, 4 held-out tasks.
    public struct Configuration: Sendable, Equatable {
        public var seed: UInt64 = 0
        public var inputDim = 32
        public var hiddenDim = 64
        public var outputDim = 8
        public var nSkills = 6
        public var nTrainTasks = 18
        public var nHeldOutTasks = 4
        /// Rank r of each skill's change of each layer.
        public var skillRank = 2
        /// `||dW_s||_F / ||W||_F` for each layer.
        public var skillScale: Float = 0.5
        public var composition: Composition = .averageDeltas
        /// Standard deviation of the Gaussian noise added to every target value.
        public var noiseStd: Float = 0.01
        public var trainSamplesPerTask = 256
        public var validationSamplesPerTask = 64
        public var testSamplesPerTask = 128
        /// Samples per held-out task available for few-shot adaptation.
        public var fewShotPoolSize = 160
        public var heldOutTestSamplesPerTask = 128

        public init() {}

        /// Throws `MultitaskDataError` naming the first setting that cannot work.
        public func validate() throws {
            func need(_ ok: Bool, _ message: String) throws { if !ok { throw MultitaskDataError("synthetic tasks: \(message)") } }
            try need(inputDim > 0 && hiddenDim > 0 && outputDim > 0, "input, hidden and output dims must be positive")
            try need(nSkills >= 1, "n_skills must be at least 1, got \(nSkills)")
            try need(skillRank >= 1, "skill rank must be at least 1, got \(skillRank)")
            try need(nTrainTasks >= nSkills, "n_train_tasks (\(nTrainTasks)) must be at least n_skills (\(nSkills)) so every skill has a single-skill task")
            try need(nHeldOutTasks >= 0, "n_heldout_tasks must not be negative")
            let combos = SyntheticTasks.combinations(nSkills, 2).count + SyntheticTasks.combinations(nSkills, 3).count
            try need(nTrainTasks - nSkills + nHeldOutTasks <= combos,
                     "\(nTrainTasks - nSkills) multi-skill training tasks + \(nHeldOutTasks) held-out tasks exceed the \(combos) distinct sets of 2-3 of \(nSkills) skills")
            try need(skillScale.isFinite && skillScale >= 0, "skill scale must be finite and >= 0")
            try need(noiseStd.isFinite && noiseStd >= 0, "noise std must be finite and >= 0")
            try need([trainSamplesPerTask, validationSamplesPerTask, testSamplesPerTask, fewShotPoolSize,
                      heldOutTestSamplesPerTask].allSatisfy { $0 >= 0 }, "sample counts must not be negative")
        }
    }

    public let configuration: Configuration
    /// The frozen base MLP: `fc1.weight` [hidden, in], `fc1.bias` [hidden], `fc2.weight` [out, hidden], `fc2.bias` [out].
    public let baseWeights: [String: Tensor]
    /// Per skill, its low-rank factors by layer: `fc1.U` [hidden, r], `fc1.V` [r, in], `fc2.U` [out, r], `fc2.V` [r, hidden].
    public let skillFactors: [[String: Tensor]]
    /// Sorted skill indices used by each training task.
    public let trainTaskSkills: [[Int]]
    /// Sorted skill indices used by each held-out task (never equal to a training task's set).
    public let heldOutTaskSkills: [[Int]]
    /// `task00`, `task01`, ... (ids of the training-task splits).
    public let taskNames: [String]
    /// `heldout0`, `heldout1`, ... (ids of the held-out splits).
    public let heldOutTaskNames: [String]
    /// Training tasks: train, validation and test splits (task ids index `taskNames`).
    public let train: MultitaskDataset
    public let validation: MultitaskDataset
    public let test: MultitaskDataset
    /// Held-out tasks: few-shot pool and test split (task ids index `heldOutTaskNames`).
    public let fewShotPool: MultitaskDataset
    public let heldOutTest: MultitaskDataset

    /// The true training allocation, `[nTrainTasks][nSkills]` with 1 where the task uses the skill, else 0.
    public var trueAllocation: [[Float]] { SyntheticTasks.indicator(trainTaskSkills, nSkills: configuration.nSkills) }
    /// The true held-out allocation, `[nHeldOutTasks][nSkills]`.
    public var heldOutAllocation: [[Float]] { SyntheticTasks.indicator(heldOutTaskSkills, nSkills: configuration.nSkills) }

    /// Generates everything from `configuration` (deterministic in `configuration.seed`).
    public init(_ configuration: Configuration = Configuration()) throws {
        try configuration.validate()
        let c = configuration
        self.configuration = c
        var rng = Xoshiro256(seed: c.seed)
        // Base MLP, He-normal weights so outputs are O(1); PyTorch-default uniform biases.
        let w1 = Tensor.normal([c.hiddenDim, c.inputDim], std: (2 / Float(c.inputDim)).squareRoot(), using: &rng)
        let b1 = Tensor.uniform([c.hiddenDim], low: -1 / Float(c.inputDim).squareRoot(), high: 1 / Float(c.inputDim).squareRoot(), using: &rng)
        let w2 = Tensor.normal([c.outputDim, c.hiddenDim], std: (1 / Float(c.hiddenDim)).squareRoot(), using: &rng)
        let b2 = Tensor.uniform([c.outputDim], low: -1 / Float(c.hiddenDim).squareRoot(), high: 1 / Float(c.hiddenDim).squareRoot(), using: &rng)
        baseWeights = ["fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2]
        // Skills: Gaussian factors, rescaled so the product has the requested relative Frobenius norm.
        var factors: [[String: Tensor]] = []
        for _ in 0..<c.nSkills {
            var f: [String: Tensor] = [:]
            for (layer, w, rows, cols) in [("fc1", w1, c.hiddenDim, c.inputDim), ("fc2", w2, c.outputDim, c.hiddenDim)] {
                let u = Tensor.normal([rows, c.skillRank], using: &rng)
                let v = Tensor.normal([c.skillRank, cols], using: &rng)
                let norm = SyntheticMLP.frobenius(SyntheticMLP.product(u, v))
                let s = norm > 0 ? (c.skillScale * SyntheticMLP.frobenius(w.scalars) / norm).squareRoot() : 0
                f["\(layer).U"] = Tensor(u.scalars.map { $0 * s }, shape: u.shape)
                f["\(layer).V"] = Tensor(v.scalars.map { $0 * s }, shape: v.shape)
            }
            factors.append(f)
        }
        skillFactors = factors
        // Allocation: single-skill tasks first, then random distinct 2-3 skill sets; held-out sets come after.
        var pool = SyntheticTasks.combinations(c.nSkills, 2) + SyntheticTasks.combinations(c.nSkills, 3)
        SyntheticTasks.shuffle(&pool, using: &rng)
        let multi = Array(pool.prefix(c.nTrainTasks - c.nSkills))
            .sorted { $0.count != $1.count ? $0.count < $1.count : $0.lexicographicallyPrecedes($1) }
        trainTaskSkills = (0..<c.nSkills).map { [$0] } + multi
        heldOutTaskSkills = Array(pool.dropFirst(c.nTrainTasks - c.nSkills).prefix(c.nHeldOutTasks))
        taskNames = (0..<c.nTrainTasks).map { $0 < 100 ? "task" + ($0 < 10 ? "0" : "") + String($0) : "task\($0)" }
        heldOutTaskNames = (0..<c.nHeldOutTasks).map { "heldout\($0)" }

        let mlp = SyntheticMLP(base: baseWeights, skills: factors, composition: c.composition)
        func split(_ stream: UInt64, _ perTask: Int, _ sets: [[Int]], _ names: [String]) -> MultitaskDataset {
            var mix = SplitMix64(seed: c.seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
            var r = Xoshiro256(seed: mix.next())
            return mlp.sample(taskSkills: sets, names: names, perTask: perTask, noiseStd: c.noiseStd, using: &r)
        }
        train = split(1, c.trainSamplesPerTask, trainTaskSkills, taskNames)
        validation = split(2, c.validationSamplesPerTask, trainTaskSkills, taskNames)
        test = split(3, c.testSamplesPerTask, trainTaskSkills, taskNames)
        fewShotPool = split(4, c.fewShotPoolSize, heldOutTaskSkills, heldOutTaskNames)
        heldOutTest = split(5, c.heldOutTestSamplesPerTask, heldOutTaskSkills, heldOutTaskNames)
    }

    /// The noiseless target of input `x` (`[in]`) for a task using `skills` (empty: the base model). // -> [out]
    public func output(_ x: [Float], skills: [Int]) -> [Float] {
        precondition(x.count == configuration.inputDim, "SyntheticTasks.output: x has \(x.count) values, expected \(configuration.inputDim)")
        let mlp = SyntheticMLP(base: baseWeights, skills: skillFactors, composition: configuration.composition)
        return mlp.forward(x, weights: mlp.taskWeights(skills))
    }

    /// The noiseless base-model output of `x` (`[in]`). // -> [out]
    public func baseOutput(_ x: [Float]) -> [Float] { output(x, skills: []) }

    // MARK: Helpers

    static func indicator(_ sets: [[Int]], nSkills: Int) -> [[Float]] {
        sets.map { s in (0..<nSkills).map { s.contains($0) ? 1 : 0 } }
    }

    /// All k-subsets of 0..<n in lexicographic order.
    static func combinations(_ n: Int, _ k: Int) -> [[Int]] {
        guard k >= 1, k <= n else { return [] }
        var out: [[Int]] = []
        var c = Array(0..<k)
        while true {
            out.append(c)
            var i = k - 1
            while i >= 0 && c[i] == n - k + i { i -= 1 }
            if i < 0 { return out }
            c[i] += 1
            for j in (i + 1)..<k { c[j] = c[j - 1] + 1 }
        }
    }

    /// Fisher-Yates shuffle driven by `rng` (stable across standard library versions).
    static func shuffle<T>(_ a: inout [T], using rng: inout some RandomNumberGenerator) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    }
}
