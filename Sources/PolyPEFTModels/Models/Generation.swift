import PolyPEFTCore
import PolyPEFTIO

/// Decoding settings, named after Hugging Face's `GenerationConfig`.
public struct GenerationConfig: Sendable, Equatable {
    /// Longest output, counting the decoder start token (HF `max_length`).
    public var maxLength: Int
    /// 1: greedy search; more: beam search.
    public var numBeams: Int
    /// Stop token; nil uses the model config's `eos_token_id`.
    public var eosTokenID: Int?
    /// Beam scores are `sum(log p) / generated_length^lengthPenalty` (HF default 1.0).
    public var lengthPenalty: Float
    /// Reuse keys/values of earlier positions (false recomputes the whole prefix each step; same tokens).
    public var useCache: Bool

    public init(maxLength: Int = 20, numBeams: Int = 1, eosTokenID: Int? = nil, lengthPenalty: Float = 1,
                useCache: Bool = true) {
        self.maxLength = maxLength
        self.numBeams = numBeams
        self.eosTokenID = eosTokenID
        self.lengthPenalty = lengthPenalty
        self.useCache = useCache
    }
}

/// Text generation for T5. Outputs start with the decoder start token and end with EOS when one was produced.
extension T5ForConditionalGeneration {
    /// Greedy or beam search (by `config.numBeams`). Per-sample task ids in `ctx.taskIDs` are expanded to one per
    /// beam while decoding and restored afterwards. Nothing is recorded for gradients.
    public func generate(inputIDs: [[Int]], attentionMask: [[Int]]? = nil, config gen: GenerationConfig = GenerationConfig(),
                         _ ctx: Context) throws -> [[Int]] {
        guard gen.maxLength >= 1 else { throw ModelError("generate: maxLength must be at least 1, got \(gen.maxLength)") }
        guard gen.numBeams >= 1 else { throw ModelError("generate: numBeams must be at least 1, got \(gen.numBeams)") }
        let eos = gen.eosTokenID ?? config.eosTokenID
        if let eos, eos < 0 || eos >= config.vocabSize {
            throw ModelError("generate: eos token \(eos) outside the vocabulary 0..<\(config.vocabSize)")
        }
        // Like HF's `generate` (no_grad): nothing is recorded while decoding; the caller's setting is restored.
        let recording = ctx.recordsGradients
        ctx.recordsGradients = false
        defer { ctx.recordsGradients = recording }
        let (states, mask) = try encode(inputIDs: inputIDs, attentionMask: attentionMask, ctx)
        if gen.numBeams == 1 {
            return try greedy(states: states, mask: mask, maxLength: gen.maxLength, eos: eos, useCache: gen.useCache, ctx)
        }
        return try beamSearch(states: states, mask: mask, gen: gen, eos: eos, ctx)
    }

    /// A decoder that feeds either only the new token (with a cache) or the whole prefix, and returns the log
    /// probabilities of the next token for every row: `[rows, vocab]`.
    struct Stepper {
        let model: T5ForConditionalGeneration
        let states: Variable
        let mask: Tensor?
        let cache: T5DecoderCache?

        func nextLogProbs(_ sequences: [[Int]], _ ctx: Context) throws -> Tensor {
            let inputs = cache == nil ? sequences : sequences.map { [$0.last!] }
            let logits = try model.decode(decoderInputIDs: inputs, encoderStates: states, encoderMask: mask,
                                          cache: cache, ctx).value                    // [rows, T, vocab]
            let last = try logits.sliced(axis: 1, start: logits.shape[1] - 1).squeezed(1)   // [rows, vocab]
            return try last.logSoftmax(axis: 1).contiguous()
        }

        /// Keeps rows `indices` of the encoder output, mask and cache (beam reordering / expansion).
        func selecting(_ indices: [Int]) throws -> Stepper {
            try cache?.reorder(indices)
            return Stepper(model: model, states: try states.indexSelect(axis: 0, indices),
                           mask: try mask?.indexSelect(axis: 0, indices), cache: cache)
        }
    }

    func greedy(states: Variable, mask: Tensor?, maxLength: Int, eos: Int?, useCache: Bool, _ ctx: Context) throws -> [[Int]] {
        let b = states.shape[0], v = config.vocabSize
        let stepper = Stepper(model: self, states: states, mask: mask,
                              cache: useCache ? T5DecoderCache(layers: config.numDecoderLayers) : nil)
        var seqs = [[Int]](repeating: [config.decoderStartTokenID], count: b)
        var done = [Bool](repeating: false, count: b)
        while seqs[0].count < maxLength && done.contains(false) {
            // Finished rows keep decoding a pad token (as HF) so the batch stays rectangular; it is dropped below.
            let lp = try stepper.nextLogProbs(seqs, ctx).storage
            for r in 0..<b {
                var best = 0
                for j in 1..<v where lp[r * v + j] > lp[r * v + best] { best = j }
                let token = done[r] ? config.padTokenID : best
                seqs[r].append(token)
                if !done[r] && token == eos { done[r] = true }
            }
        }
        return seqs.map { s in
            guard let eos, let end = s.firstIndex(of: eos) else { return s }
            return Array(s[...end])
        }
    }
}
