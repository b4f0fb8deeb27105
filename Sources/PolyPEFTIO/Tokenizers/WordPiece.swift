/// The `WordPiece` model: each word becomes its greedy longest-match-first pieces, continuations carrying
/// `continuing_subword_prefix` (`##`); a word with no segmentation, or longer than `max_input_chars_per_word`
/// scalars, becomes the single unknown token.
///
/// ```
/// "unaffable" -> un ##aff ##able        (at each start, the longest vocab entry, shrinking one scalar at a time)
/// ```
public struct WordPiece: TokenizerModel {
    /// Token (UTF-8 bytes: compared as bytes, as the library does, not as canonically equivalent Swift strings) -> id.
    let vocab: [[UInt8]: Int]
    public let unknownToken: String
    public let unknownID: Int
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    /// The longest vocabulary entry in scalars (prefix included): no longer piece is tried, with or without the prefix.
    let longestEntry: Int

    /// `vocab`: tokens and ids, tokens distinct as UTF-8 bytes.
    public init(vocab: [(String, Int)], unknownToken: String, continuingPrefix: String = "##",
                maxInputCharsPerWord: Int = 100) throws {
        var bytes: [[UInt8]: Int] = [:]
        for (token, id) in vocab {
            guard bytes.updateValue(id, forKey: Array(token.utf8)) == nil else {
                throw TokenizerError("WordPiece: the vocabulary holds \"\(token)\" twice")
            }
        }
        guard let unk = bytes[Array(unknownToken.utf8)] else {
            throw TokenizerError("WordPiece: the unknown token \"\(unknownToken)\" is not in the vocabulary")
        }
        self.vocab = bytes
        self.unknownToken = unknownToken
        self.unknownID = unk
        self.continuingPrefix = continuingPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        longestEntry = vocab.map { $0.0.unicodeScalars.count }.max() ?? 0
    }

    public var tokens: [(token: String, id: Int)] { vocab.map { (String(decoding: $0.key, as: UTF8.self), $0.value) } }

    public func id(for token: String) -> Int? { vocab[Array(token.utf8)] }

    /// Appends the ids of `word`'s pieces to `ids`.
    public func tokenize(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int]) {
        let n = word.count
        guard n <= maxInputCharsPerWord else { ids.append(unknownID); return }
        let mark = ids.count
        var start = word.startIndex
        var key: [UInt8] = []
        let prefix = Array(continuingPrefix.utf8)
        while start < word.endIndex {
            var end = Swift.min(word.endIndex, start + longestEntry)
            var found: Int?
            while start < end {
                key.removeAll(keepingCapacity: true)
                if start > word.startIndex { key.append(contentsOf: prefix) }
                for c in word[start..<end] { UTF8.encode(c) { key.append($0) } }
                if let id = vocab[key] { found = id; break }
                end -= 1
            }
            guard let id = found else {
                ids.removeSubrange(mark...)
                ids.append(unknownID)
                return
            }
            ids.append(id)
            start = end
        }
    }
}

/// The `WordPiece` decoder: tokens joined by spaces, except continuations (prefix removed, glued on); with
/// `cleanup`, the library's English detokenisation (" ." -> ".", " n't" -> "n't", ...) on each token.
public struct WordPieceDecoder: TokenDecoder, Equatable {
    public var prefix = "##"
    public var cleanup = true

    public init(prefix: String = "##", cleanup: Bool = true) {
        self.prefix = prefix
        self.cleanup = cleanup
    }

    public func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = []
        for (i, token) in tokens.enumerated() {
            var t = token
            if i != 0 {
                t = t.unicodeScalars.starts(with: prefix.unicodeScalars)
                    ? String(String.UnicodeScalarView(t.unicodeScalars.dropFirst(prefix.unicodeScalars.count))) : " " + t
            }
            if cleanup { t = Self.cleanup(t) }
            out.append(t)
        }
        return out
    }

    static let cleanupRules = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                               (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]

    static func cleanup(_ s: String) -> String {
        var s = Array(s.unicodeScalars)
        for (from, to) in cleanupRules { s = replacing(s, Array(from.unicodeScalars), Array(to.unicodeScalars)) }
        return s.string
    }

    /// Every non-overlapping occurrence of `from`, left to right, replaced (scalar by scalar, as Rust's `replace`;
    /// an empty `from` matches before every scalar and at the end, as there).
    static func replacing(_ s: [Unicode.Scalar], _ from: [Unicode.Scalar], _ to: [Unicode.Scalar]) -> [Unicode.Scalar] {
        if from.isEmpty { return to + s.flatMap { [$0] + to } }
        guard s.count >= from.count else { return s }
        var out: [Unicode.Scalar] = []
        var i = 0
        while i < s.count {
            if i + from.count <= s.count && s[i..<(i + from.count)].elementsEqual(from) {
                out.append(contentsOf: to)
                i += from.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}
