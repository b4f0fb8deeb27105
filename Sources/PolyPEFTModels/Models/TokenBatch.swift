import PolyPEFTCore
import PolyPEFTIO

/// Checked conversions of token-id and mask batches (`[[Int]]`, one row per sample) into flat arrays and additive
/// attention masks.
public enum TokenBatch {
    /// The value added to masked scores: `torch.finfo(float32).min`, as Hugging Face uses.
    public static let maskedScore: Float = -Float.greatestFiniteMagnitude

    /// Flattens a rectangular, non-empty batch of ids in `0..<vocabSize`; `name` appears in errors.
    public static func flatten(_ ids: [[Int]], vocabSize: Int, _ name: String) throws -> (ids: [Int], batch: Int, length: Int) {
        guard let t = ids.first?.count, t > 0 else { throw ModelError("\(name): empty batch or empty first sequence") }
        var flat: [Int] = []
        flat.reserveCapacity(ids.count * t)
        for (b, row) in ids.enumerated() {
            guard row.count == t else {
                throw ModelError("\(name): row \(b) has \(row.count) tokens, row 0 has \(t) (pad to a rectangle)")
            }
            for (i, id) in row.enumerated() where id < 0 || id >= vocabSize {
                throw ModelError("\(name): token id \(id) at [\(b), \(i)] is outside the vocabulary 0..<\(vocabSize)")
            }
            flat += row
        }
        return (flat, ids.count, t)
    }

    /// A mask or token-type batch must have `batch` rows of `length` entries; `name` starts the error.
    public static func checkRows(_ rows: [[Int]], batch: Int, length: Int, _ name: String) throws {
        guard rows.count == batch else { throw ModelError("\(name): \(rows.count) rows for \(batch) sequences") }
        if let (b, row) = rows.enumerated().first(where: { $0.element.count != length }) {
            throw ModelError("\(name): row \(b) has \(row.count) entries for \(length) tokens")
        }
    }

    /// `[B, T]` of 0/1 -> additive mask `[B, 1, 1, T]` (0 where 1, `maskedScore` where 0), checked against the ids.
    public static func paddingMask(_ mask: [[Int]], batch: Int, length: Int, _ name: String) throws -> Tensor {
        try checkRows(mask, batch: batch, length: length, name)
        var out = [Float](repeating: 0, count: batch * length)
        for (b, row) in mask.enumerated() {
            for (i, m) in row.enumerated() {
                guard m == 0 || m == 1 else { throw ModelError("\(name): entry \(m) at [\(b), \(i)] is not 0 or 1") }
                if m == 0 { out[b * length + i] = maskedScore }
            }
        }
        return Tensor(out, shape: [batch, 1, 1, length])
    }

    /// Causal mask `[1, 1, Tq, Tk]` for queries at positions `offset..<offset+Tq`: key j is hidden from query i when
    /// `j > offset + i`.
    public static func causalMask(queryLength: Int, keyLength: Int, offset: Int) -> Tensor {
        var out = [Float](repeating: 0, count: queryLength * keyLength)
        for i in 0..<queryLength {
            for j in 0..<keyLength where j > offset + i { out[i * keyLength + j] = maskedScore }
        }
        return Tensor(out, shape: [1, 1, queryLength, keyLength])
    }
}
