import PolyPEFTCore

extension BertModel {
    /// Sentence embeddings as sentence-transformers computes them with mean pooling and normalisation
    /// (`Pooling(pooling_mode_mean_tokens)` then `Normalize`), e.g. for all-MiniLM-L6-v2:
    ///
    /// ```
    /// h = encoder(ids, mask)                                  // [B, T, H]
    /// e[b] = sum_t mask[b, t] h[b, t] / max(sum_t mask[b, t], 1e-9)   // [B, H]
    /// e[b] = e[b] / max(||e[b]||_2, 1e-12)
    /// ```
    /// Inference only (no gradient): the adapters in the model apply as `ctx` routes them.
    public func sentenceEmbeddings(inputIDs: [[Int]], attentionMask: [[Int]], tokenTypeIDs: [[Int]]? = nil,
                                   _ ctx: Context) throws -> Tensor {
        guard virtualTokens == nil else { throw ModelError("bert sentence embeddings: not with virtual tokens installed") }
        let h = try forward(inputIDs: inputIDs, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, ctx).sequence.value
        let b = h.shape[0], t = h.shape[1], d = h.shape[2]
        guard attentionMask.count == b, attentionMask.allSatisfy({ $0.count == t }) else {
            throw ModelError("bert sentence embeddings: the attention mask is not [\(b), \(t)] like the ids")
        }
        let hv = h.scalars
        var out = [Float](repeating: 0, count: b * d)
        for i in 0..<b {
            var sum = [Double](repeating: 0, count: d), count = 0.0
            for j in 0..<t where attentionMask[i][j] != 0 {
                count += Double(attentionMask[i][j])
                for k in 0..<d { sum[k] += Double(attentionMask[i][j]) * Double(hv[(i * t + j) * d + k]) }
            }
            let mean = sum.map { $0 / Swift.max(count, 1e-9) }
            let norm = Swift.max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            for k in 0..<d { out[i * d + k] = Float(mean[k] / norm) }
        }
        return Tensor(out, shape: [b, d])   // [B, H]
    }
}
