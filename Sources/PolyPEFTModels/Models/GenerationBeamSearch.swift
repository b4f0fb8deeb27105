import PolyPEFTCore
import PolyPEFTIO

/// Beam search with Hugging Face's scoring (length penalty on the generated length, `early_stopping=False`).
extension T5ForConditionalGeneration {
    /// A finished hypothesis.
    struct Hypothesis {
        var tokens: [Int]
        var score: Float
    }

    /// Per sample: keep `K` running beams; at each step take the `2K` best (beam, token) continuations of all beams
    /// by `beam score + log p`; a continuation ending in EOS among the first `K` becomes a finished hypothesis scored
    /// `sum(log p) / generated_length^lengthPenalty`, the others fill the next `K` beams. A sample is done when it has
    /// `K` hypotheses none worse than this step's best candidate score at the current length; at `maxLength` the running beams join the
    /// hypotheses. The best hypothesis is returned.
    func beamSearch(states: Variable, mask: Tensor?, gen: GenerationConfig, eos: Int?, _ ctx: Context) throws -> [[Int]] {
        let b = states.shape[0], k = gen.numBeams, v = config.vocabSize
        let savedTasks = ctx.taskIDs
        defer { ctx.taskIDs = savedTasks }
        let expand = (0..<(b * k)).map { $0 / k }                    // row b*K + j belongs to sample b
        ctx.taskIDs = savedTasks.map { t in expand.map { t[$0] } }
        let stepper = try Stepper(model: self, states: states, mask: mask,
                                  cache: gen.useCache ? T5DecoderCache(layers: config.numDecoderLayers) : nil).selecting(expand)
        var seqs = [[Int]](repeating: [config.decoderStartTokenID], count: b * k)
        // Only the first beam is live at the start, so the K beams do not all pick the same token.
        var scores = (0..<(b * k)).map { $0 % k == 0 ? Float(0) : -1e9 }
        var finished = [[Hypothesis]](repeating: [], count: b)
        var done = [Bool](repeating: false, count: b)
        func penalised(_ s: Float, _ generated: Int) -> Float { s / _powf(Float(generated), gen.lengthPenalty) }
        func worst(_ h: [Hypothesis]) -> Float { h.map(\.score).min() ?? -.infinity }
        func add(_ h: Hypothesis, to i: Int) {
            finished[i].append(h)
            if finished[i].count > k, let w = finished[i].indices.min(by: { finished[i][$0].score < finished[i][$1].score }) {
                finished[i].remove(at: w)
            }
        }

        while seqs[0].count < gen.maxLength && done.contains(false) {
            let lp = try stepper.nextLogProbs(seqs, ctx).storage              // [B*K, V]
            let generated = seqs[0].count                                      // tokens after the start, this one included
            var nextSeqs = seqs, nextScores = scores, source = Array(0..<(b * k))
            for i in 0..<b {
                if done[i] {
                    for j in 0..<k {                                           // keep dead rows decoding pad
                        nextSeqs[i * k + j] = seqs[i * k + j] + [config.padTokenID]
                    }
                    continue
                }
                let candidates = topCandidates(lp, rows: (i * k)..<((i + 1) * k), vocab: v, scores: scores, count: 2 * k)
                var filled = 0
                for (rank, c) in candidates.enumerated() {
                    let (row, token, s) = c
                    if token == eos {
                        if rank < k { add(Hypothesis(tokens: seqs[row] + [token], score: penalised(s, generated)), to: i) }
                        continue
                    }
                    let dst = i * k + filled
                    nextSeqs[dst] = seqs[row] + [token]
                    nextScores[dst] = s
                    source[dst] = row
                    filled += 1
                    if filled == k { break }
                }
                // HF's `early_stopping=False` heuristic: the best candidate score of this step, at the current length.
                if finished[i].count >= k && worst(finished[i]) >= penalised(candidates[0].2, generated) { done[i] = true }
            }
            seqs = nextSeqs
            scores = nextScores
            try stepper.cache?.reorder(source)
        }
        return try (0..<b).map { i in
            if !done[i] {
                for j in 0..<k {
                    let row = i * k + j
                    add(Hypothesis(tokens: seqs[row], score: penalised(scores[row], seqs[row].count - 1)), to: i)
                }
            }
            guard let best = finished[i].max(by: { $0.score < $1.score }) else {
                throw ModelError("generate: beam search finished sample \(i) without a hypothesis")
            }
            return best.tokens
        }
    }

    /// The `count` best (row, token, score) over `rows` of `logProbs` (`[rows, V]`, flat) plus each row's beam score,
    /// best first; ties go to the lower (row, token) index, as `torch.topk` on the flattened scores.
    func topCandidates(_ logProbs: [Float], rows: Range<Int>, vocab v: Int, scores: [Float], count: Int) -> [(Int, Int, Float)] {
        var best: [(Int, Int, Float)] = []
        best.reserveCapacity(count + 1)
        for r in rows {
            for t in 0..<v {
                let s = scores[r] + logProbs[r * v + t]
                if best.count == count, let last = best.last, s <= last.2 { continue }
                var at = best.count
                while at > 0 && best[at - 1].2 < s { at -= 1 }
                best.insert((r, t, s), at: at)
                if best.count > count { best.removeLast() }
            }
        }
        return best
    }
}
