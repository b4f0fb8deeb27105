/// Seeded random number generation. Nothing in PolyPEFT draws from a global generator: every function that needs
/// randomness takes `inout some RandomNumberGenerator`, and `Xoshiro256` is the provided, reproducible, saveable one.

/// SplitMix64: used to expand a 64-bit seed into the state of `Xoshiro256`.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman & Vigna): fast, 256-bit state, good statistical quality. Its state is `Codable`, so a
/// training checkpoint can save and restore the exact stream.
public struct Xoshiro256: RandomNumberGenerator, Sendable, Codable, Equatable {
    // The four state words as stored properties (an array cost a bounds and uniqueness check per access: ~40
    // instructions per draw instead of ~10).
    @usableFromInline var s0, s1, s2, s3: UInt64

    /// The four state words (encoded as the JSON array `"state"` in checkpoints).
    public var state: [UInt64] {
        get { [s0, s1, s2, s3] }
        set {
            precondition(newValue.count == 4, "Xoshiro256 state has 4 words, got \(newValue.count)")
            (s0, s1, s2, s3) = (newValue[0], newValue[1], newValue[2], newValue[3])
        }
    }

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        (s0, s1, s2, s3) = (sm.next(), sm.next(), sm.next(), sm.next())
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inlinable
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    enum CodingKeys: String, CodingKey { case state }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let words = try c.decode([UInt64].self, forKey: .state)
        guard words.count == 4 else {
            throw DecodingError.dataCorruptedError(forKey: .state, in: c,
                                                   debugDescription: "xoshiro256 state needs 4 words, got \(words.count)")
        }
        (s0, s1, s2, s3) = (words[0], words[1], words[2], words[3])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state, forKey: .state)
    }
}

extension RandomNumberGenerator {
    /// A float uniform in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
}

extension Tensor {
    /// Independent draws from U[low, high).
    @inlinable
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1,
                               using rng: inout some RandomNumberGenerator) -> Tensor {
        let n = elementCount(shape)
        var data = uninitializedScalars(n)
        for i in 0..<n { data[i] = low + (high - low) * rng.nextUnitFloat() }
        return Tensor(data, shape: shape)
    }

    /// Independent draws from N(mean, std^2) (Box-Muller, both outputs used).
    @inlinable
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1,
                              using rng: inout some RandomNumberGenerator) -> Tensor {
        let n = elementCount(shape)
        var data = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            // u1 in (0, 1] so the log is finite.
            let u1 = 1 - Double(rng.nextUnitFloat()), u2 = Double(rng.nextUnitFloat())
            let rad = (-2 * _log(u1)).squareRoot(), theta = 2 * Double.pi * u2
            data[i] = mean + std * Float(rad * _cos(theta))
            if i + 1 < n { data[i + 1] = mean + std * Float(rad * _sin(theta)) }
            i += 2
        }
        return Tensor(data, shape: shape)
    }

    /// PyTorch's `kaiming_uniform_(w, a)` for a weight whose fan-in is `fanIn`:
    ///
    /// ```
    /// gain = sqrt(2 / (1 + a^2)),  bound = gain * sqrt(3 / fanIn),  w ~ U(-bound, bound)
    /// ```
    /// `nn.Linear` uses `a = sqrt(5)`, giving `bound = 1 / sqrt(fanIn)`.
    @inlinable
    public static func kaimingUniform(_ shape: [Int], fanIn: Int, a: Float = Float(5).squareRoot(),
                                      using rng: inout some RandomNumberGenerator) -> Tensor {
        let gain = (2 / (1 + a * a)).squareRoot()
        let bound = gain * (3 / Float(Swift.max(fanIn, 1))).squareRoot()
        return uniform(shape, low: -bound, high: bound, using: &rng)
    }

    /// Draws from N(0, std^2) truncated to [-bound, bound] (PyTorch's `trunc_normal_(mean=0, std, a=-bound, b=bound)`
    /// in distribution; a draw outside the bounds is drawn again). `bound` must be above 0.
    public static func truncatedNormal(_ shape: [Int], std: Float, bound: Float,
                                       using rng: inout some RandomNumberGenerator) -> Tensor {
        precondition(bound > 0 && std > 0, "truncatedNormal: std and bound must be above 0")
        let n = elementCount(shape)
        var data = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var x: Float
            repeat { x = normal([1], std: std, using: &rng).scalars[0] } while Swift.abs(x) > bound
            data[i] = x
        }
        return Tensor(data, shape: shape)
    }

    /// PyTorch's `xavier_normal_` on a matrix `[rows, cols]`: N(0, 2 / (rows + cols)).
    public static func xavierNormal(_ rows: Int, _ cols: Int, using rng: inout some RandomNumberGenerator) -> Tensor {
        normal([rows, cols], std: (2 / Float(Swift.max(rows + cols, 1))).squareRoot(), using: &rng)
    }

    /// A dropout mask of `shape`: each element `1 / (1 - p)` where a uniform draw is at least `p`, else 0 (one draw
    /// per element, in order). For the context's concrete generator, so the loop compiles without generic dispatch
    /// wherever it is called from.
    public static func dropoutMask(_ shape: [Int], p: Float, using rng: inout Xoshiro256) -> Tensor {
        let n = elementCount(shape), keep = 1 / (1 - p)
        var data = uninitializedScalars(n)
        for i in 0..<n { data[i] = rng.nextUnitFloat() >= p ? keep : 0 }
        return Tensor(data, shape: shape)
    }
}
