/// The `Unigram` model (SentencePiece, as T5 uses it): each word is segmented into the vocabulary pieces whose
/// scores (log probabilities) sum highest, by Viterbi over scalar positions.
///
/// ```
/// best[0] = 0;  for each start s, each piece p of the vocabulary that the text continues with at s:
///     best[s + |p|] = max(best[s + |p|], best[s] + score(p))          (the first found wins ties; shorter first)
/// a scalar no piece of length 1 covers: a step of one scalar scored min(score) - 10 as the unknown token
/// consecutive unknown steps are fused into one unknown token; with byte_fallback, a fused unknown becomes
/// <0xHH> tokens for its UTF-8 bytes when all of them are in the vocabulary
/// ```
public struct Unigram: TokenizerModel {
    /// Pieces and scores, by id.
    public let pieces: [(piece: String, score: Double)]
    public let unknownID: Int
    public let byteFallback: Bool
    let ids: [[UInt8]: Int]
    let trie: ScalarTrie
    let unknownScore: Double
    /// Ids of `<0x00>` ... `<0xFF>` when byte fallback is on.
    let byteIDs: [Int?]
    /// For each id, the id the library's token map gives its piece (a repeated piece maps to its later id).
    let mappedID: [Int]

    public init(pieces: [(piece: String, score: Double)], unknownID: Int, byteFallback: Bool = false) throws {
        guard !pieces.isEmpty else { throw TokenizerError("Unigram: the vocabulary is empty") }
        guard unknownID >= 0 && unknownID < pieces.count else {
            throw TokenizerError("Unigram: unk_id \(unknownID) is outside the vocabulary of \(pieces.count) pieces")
        }
        var ids: [[UInt8]: Int] = [:]
        var trie = ScalarTrie()
        for (id, p) in pieces.enumerated() {
            guard p.score.isFinite else { throw TokenizerError("Unigram: piece \(id) has the score \(p.score)") }
            ids[Array(p.piece.utf8)] = id        // a repeated piece: the later id, as the library keeps it
            trie.insert(Array(p.piece.unicodeScalars), id: id)
        }
        self.pieces = pieces
        self.unknownID = unknownID
        self.byteFallback = byteFallback
        self.ids = ids
        self.trie = trie
        unknownScore = pieces.map(\.score).min()! - 10
        byteIDs = (0..<256).map { ids[Array(String(format: "<0x%02X>", $0).utf8)] }
        mappedID = pieces.map { ids[Array($0.piece.utf8)]! }
    }

    public var tokens: [(token: String, id: Int)] { ids.map { (String(decoding: $0.key, as: UTF8.self), $0.value) } }

    public func id(for token: String) -> Int? { ids[Array(token.utf8)] }

    public func tokenize(_ word: ArraySlice<Unicode.Scalar>, into out: inout [Int]) {
        let n = word.count
        guard n > 0 else { return }
        let base = word.startIndex
        // best[e]: score of the best path over word[0..<e], where its last token starts, and its id.
        var score = [Double](repeating: 0, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var id = [Int](repeating: 0, count: n + 1)
        for s in 0..<n {
            guard s == 0 || from[s] >= 0 else { continue }
            var single = false
            trie.forEachPrefix(of: word[(base + s)...]) { length, piece in
                // The library's map gives a repeated piece its later id (and that id's score).
                let pid = mappedID[piece]
                let candidate = score[s] + pieces[pid].score
                if from[s + length] < 0 || candidate > score[s + length] {
                    score[s + length] = candidate
                    from[s + length] = s
                    id[s + length] = pid
                }
                if length == 1 { single = true }
            }
            if !single {
                let candidate = score[s] + unknownScore
                if from[s + 1] < 0 || candidate > score[s + 1] {
                    score[s + 1] = candidate
                    from[s + 1] = s
                    id[s + 1] = unknownID
                }
            }
        }
        // Back from the end; runs of unknown steps become one token.
        var path: [(start: Int, end: Int, id: Int)] = []
        var e = n
        while e > 0 {
            let s = from[e]
            if id[e] == unknownID, let last = path.last, last.id == unknownID { path[path.count - 1].start = s } else { path.append((s, e, id[e])) }
            e = s
        }
        for step in path.reversed() {
            if step.id == unknownID, let pid = ids[Array(word[(base + step.start)..<(base + step.end)].string.utf8)] {
                out.append(pid)   // a fused run that happens to be a piece (the library looks the string up)
            } else if step.id == unknownID && byteFallback {
                let bytes = Array(word[(base + step.start)..<(base + step.end)].string.utf8)
                let mapped = bytes.map { byteIDs[Int($0)] }
                if mapped.allSatisfy({ $0 != nil }) { out.append(contentsOf: mapped.map { $0! }) } else { out.append(unknownID) }
            } else {
                out.append(step.id)
            }
        }
    }
}

/// A trie over scalars: every vocabulary piece that is a prefix of a text, shortest first.
struct ScalarTrie: Sendable {
    var children: [[Unicode.Scalar: Int]] = [[:]]
    var terminal: [Int?] = [nil]

    mutating func insert(_ key: [Unicode.Scalar], id: Int) {
        var node = 0
        for c in key {
            if let next = children[node][c] { node = next; continue }
            children.append([:])
            terminal.append(nil)
            children[node][c] = children.count - 1
            node = children.count - 1
        }
        if terminal[node] == nil { terminal[node] = id }
    }

    func forEachPrefix(of text: ArraySlice<Unicode.Scalar>, _ body: (_ length: Int, _ id: Int) -> Void) {
        var node = 0, length = 0
        for c in text {
            guard let next = children[node][c] else { return }
            node = next
            length += 1
            if let id = terminal[node] { body(length, id) }
        }
    }
}
