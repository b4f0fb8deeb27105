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
    public var state: [UInt64]

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        state = [sm.next(), sm.next(), sm.next(), sm.next()]
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    @inlinable
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension RandomNumberGenerator {
    /// A float uniform in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
}

extension Tensor {
    /// Independent draws from U[low, high).
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1,
                               using rng: inout some RandomNumberGenerator) -> Tensor {
        let n = elementCount(shape)
        var data = [Float](repeating: 0, count: n)
        for i in 0..<n { data[i] = low + (high - low) * rng.nextUnitFloat() }
        return Tensor(data, shape: shape)
    }

    /// Independent draws from N(mean, std^2) (Box-Muller, both outputs used).
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
    public static func kaimingUniform(_ shape: [Int], fanIn: Int, a: Float = Float(5).squareRoot(),
                                      using rng: inout some RandomNumberGenerator) -> Tensor {
        let gain = (2 / (1 + a * a)).squareRoot()
        let bound = gain * (3 / Float(Swift.max(fanIn, 1))).squareRoot()
        return uniform(shape, low: -bound, high: bound, using: &rng)
    }
}
