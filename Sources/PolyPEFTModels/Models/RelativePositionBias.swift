import PolyPEFTCore
import PolyPEFTIO

/// T5's relative position buckets and the learned per-head bias built from them.
public enum RelativePositionBias {
    /// The bucket of a relative position `memory - query` (Mesh TensorFlow / HF `_relative_position_bucket`):
    ///
    /// ```
    /// bidirectional: half the buckets for n > 0, n = |n|;   causal: n = max(-n, 0)
    /// exact = buckets / 2
    /// n < exact:  bucket = n
    /// else:       bucket = min(exact + int(log(n / exact) / log(maxDistance / exact) * (buckets - exact)), buckets - 1)
    /// ```
    /// The logarithm is evaluated in Float32 as PyTorch does, so bucket boundaries agree exactly.
    public static func bucket(_ relativePosition: Int, bidirectional: Bool, numBuckets: Int, maxDistance: Int) -> Int {
        var buckets = numBuckets
        var result = 0
        var n = relativePosition
        if bidirectional {
            buckets /= 2
            if n > 0 { result += buckets }
            n = Swift.abs(n)
        } else {
            n = -Swift.min(n, 0)
        }
        let exact = buckets / 2
        if n < exact { return result + n }
        let ratio = _logf(Float(n) / Float(exact)) / Float(_log(Double(maxDistance) / Double(exact)))
        let large = exact + Int(ratio * Float(buckets - exact))
        return result + Swift.min(large, buckets - 1)
    }

    /// Bucket indices for query positions `offset..<offset+queryLength` against keys `0..<keyLength`, row-major
    /// `[queryLength, keyLength]`.
    public static func buckets(queryLength: Int, keyLength: Int, offset: Int, bidirectional: Bool,
                               numBuckets: Int, maxDistance: Int) -> [Int] {
        var out = [Int](repeating: 0, count: queryLength * keyLength)
        for i in 0..<queryLength {
            for j in 0..<keyLength {
                out[i * keyLength + j] = bucket(j - (i + offset), bidirectional: bidirectional,
                                                numBuckets: numBuckets, maxDistance: maxDistance)
            }
        }
        return out
    }

    /// The bias `[1, H, Tq, Tk]` read from `table` (`[numBuckets, H]`, trained: its gradient flows through the lookup).
    public static func bias(table: Variable, queryLength: Int, keyLength: Int, offset: Int, bidirectional: Bool,
                            maxDistance: Int) throws -> Variable {
        let nb = table.shape[0], h = table.shape[1]
        let idx = buckets(queryLength: queryLength, keyLength: keyLength, offset: offset, bidirectional: bidirectional,
                          numBuckets: nb, maxDistance: maxDistance)
        let rows = try table.indexSelect(axis: 0, idx)                              // rows: [Tq*Tk, H]
        return try rows.reshaped([queryLength, keyLength, h]).permuted([2, 0, 1]).unsqueezed(0)   // [1, H, Tq, Tk]
    }
}
