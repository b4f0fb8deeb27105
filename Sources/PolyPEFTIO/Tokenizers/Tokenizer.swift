import Foundation
import PolyPEFTCore

/// A tokenizer read from a Hugging Face `tokenizer.json`, computing the ids the `tokenizers` library computes.
///
/// ```
/// text --added tokens--> pieces: added tokens with `normalized` false matched on the raw text (leftmost-longest)
///                        pass through whole
///      --normalizer----> each other piece normalized; then added tokens with `normalized` true matched, by their
///                        normalized content, in the normalized text
///      --pre-tokenizer-> words (empty pieces dropped)
///      --model---------> ids
///      --post-processor> truncation (leaving room for the template's tokens), the template ([CLS] A [SEP] /
///                        [CLS] A [SEP] B [SEP], T5's A </s>, with type ids), padding (fixed or batch-longest)
/// ids  --decoder-------> text, special tokens skipped on request
/// ```
/// Supported components: normalizers `BertNormalizer`, `Precompiled`, `Replace`, `NFC` / `NFD` / `NFKC` / `NFKD`,
/// `Lowercase`, `Strip`, `Sequence`; pre-tokenizers `BertPreTokenizer`, `WhitespaceSplit`, `Metaspace`, `Sequence`;
/// models `WordPiece` and `Unigram`; post-processors `TemplateProcessing` and `BertProcessing`; decoders `WordPiece`,
/// `Metaspace`, `ByteFallback`, `Fuse`, `Strip`, `Replace`, `Sequence`. Any other is an error naming it.
/// `truncation` and `padding` start as the file sets them and may be changed.
public struct Tokenizer: Sendable {
    /// A token matched whole in the text before normalization (`normalized` false) or after it.
    public struct AddedToken: Sendable, Equatable {
        public var id: Int
        public var content: String
        public var special: Bool
        public var normalized: Bool

        public init(id: Int, content: String, special: Bool, normalized: Bool) {
            self.id = id
            self.content = content
            self.special = special
            self.normalized = normalized
        }
    }

    public struct Truncation: Sendable, Equatable {
        public enum Strategy: String, Sendable { case longestFirst = "LongestFirst", onlyFirst = "OnlyFirst", onlySecond = "OnlySecond" }
        public var maxLength: Int
        public var strategy: Strategy = .longestFirst
        /// Truncate from the left (keep the end) instead of the right.
        public var fromLeft = false

        public init(maxLength: Int, strategy: Strategy = .longestFirst, fromLeft: Bool = false) {
            self.maxLength = maxLength
            self.strategy = strategy
            self.fromLeft = fromLeft
        }
    }

    public struct Padding: Sendable, Equatable {
        /// Pad to this length (`Fixed`), or to the longest of the batch (nil: `BatchLongest`).
        public var length: Int?
        public var multipleOf: Int?
        public var left = false
        public var id = 0
        public var typeID = 0
        public var token = "[PAD]"

        public init(length: Int? = nil, multipleOf: Int? = nil, left: Bool = false, id: Int = 0, typeID: Int = 0, token: String = "[PAD]") {
            self.length = length
            self.multipleOf = multipleOf
            self.left = left
            self.id = id
            self.typeID = typeID
            self.token = token
        }
    }

    public let normalizer: (any TextNormalizer)?
    public let preTokenizer: (any PreTokenizer)?
    public let model: any TokenizerModel
    public let postProcessor: TemplateProcessing?
    public let decoder: (any TokenDecoder)?
    public let addedTokens: [AddedToken]
    public var truncation: Truncation?
    public var padding: Padding?
    /// id -> token, for the model's vocabulary and the added tokens.
    let idToToken: [Int: String]
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher

    public init(normalizer: (any TextNormalizer)?, preTokenizer: (any PreTokenizer)?, model: any TokenizerModel,
                postProcessor: TemplateProcessing?, decoder: (any TokenDecoder)?, addedTokens: [AddedToken] = [], truncation: Truncation? = nil, padding: Padding? = nil) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.truncation = truncation
        self.padding = padding
        var reverse: [Int: String] = [:]
        for (token, id) in model.tokens { reverse[id] = token }
        for t in addedTokens { reverse[t.id] = t.content }
        idToToken = reverse
        rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized }.map { (Array($0.content.unicodeScalars), $0) })
        // Normalized tokens are looked for by their normalized content, as the library's normalized cache does.
        normalizedMatcher = AddedTokenMatcher(addedTokens.filter(\.normalized).map {
            (normalizer?.normalize(Array($0.content.unicodeScalars)) ?? Array($0.content.unicodeScalars), $0)
        })
    }

    // MARK: Encoding

    /// Longest encoding padding may produce; a padding setting asking for more is an error, not an allocation.
    public static let maxPaddedLength = 1 << 20

    /// Encodes one text (and optionally a second, for pair inputs), with the template's special tokens unless
    /// `addSpecialTokens` is false, then truncation and padding as configured.
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true) throws -> Encoding {
        var e = try postProcess(encodeSequence(text), pair.map(encodeSequence), addSpecialTokens: addSpecialTokens)
        if let padding { e.pad(to: try paddedLength(padding, longest: e.count), id: padding.id, typeID: padding.typeID, token: padding.token, left: padding.left) }
        return e
    }

    /// Encodes every text; `BatchLongest` padding pads to the longest of them.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true) throws -> [Encoding] {
        var out = try texts.map { try postProcess(encodeSequence($0), nil, addSpecialTokens: addSpecialTokens) }
        if let padding {
            let length = try paddedLength(padding, longest: out.map(\.count).max() ?? 0)
            for i in out.indices { out[i].pad(to: length, id: padding.id, typeID: padding.typeID, token: padding.token, left: padding.left) }
        }
        return out
    }

    func paddedLength(_ p: Padding, longest: Int) throws -> Int {
        var n = p.length ?? longest
        if let m = p.multipleOf, m > 0, n % m != 0 {
            let (rounded, overflow) = n.addingReportingOverflow(m - n % m)
            n = overflow ? Int.max : rounded
        }
        guard n <= Self.maxPaddedLength else {
            throw TokenizerError("padding to \(n) tokens is more than \(Self.maxPaddedLength) (padding.strategy or pad_to_multiple_of)")
        }
        return n
    }

    /// One sequence before the post-processor: added tokens, normalizer, pre-tokenizer, model.
    func encodeSequence(_ text: String) -> Encoding {
        var e = Encoding()
        let scalars = Array(text.unicodeScalars)
        var ids: [Int] = []
        for piece in rawMatcher.split(scalars[...]) {
            if let token = piece.token { e.append(id: token.id, token: piece.text.string, typeID: 0, special: false); continue }
            let atStart = piece.text.startIndex == 0
            let normalized = normalizer?.normalize(Array(piece.text)) ?? Array(piece.text)
            for part in normalizedMatcher.split(normalized[...]) {
                if let token = part.token { e.append(id: token.id, token: part.text.string, typeID: 0, special: false); continue }
                guard !part.text.isEmpty else { continue }   // the library drops empty pieces before pre-tokenizing
                let whole = TextPiece(part.text, atStart: atStart && part.text.startIndex == 0)
                let words = preTokenizer?.split(whole) ?? (part.text.isEmpty ? [] : [whole])
                ids.removeAll(keepingCapacity: true)
                for w in words { model.tokenize(w.scalars, into: &ids) }
                for id in ids { e.append(id: id, token: idToToken[id] ?? "", typeID: 0, special: false) }
            }
        }
        return e
    }

    /// Truncation (leaving room for the template's tokens), then the template.
    func postProcess(_ a: Encoding, _ b: Encoding?, addSpecialTokens: Bool) throws -> Encoding {
        var a = a, b = b
        if let t = truncation {
            let added = addSpecialTokens ? postProcessor?.addedTokenCount(pair: b != nil) ?? 0 : 0
            guard t.maxLength >= added else {
                throw TokenizerError("truncation max_length \(t.maxLength) is shorter than the \(added) special tokens the template adds")
            }
            try Self.truncate(&a, &b, maxLength: t.maxLength - added, t)
        }
        guard let postProcessor else {
            if let b { a.append(b, typeID: 0) }     // the library's default: sequences joined, type ids kept (0)
            return a
        }
        return postProcessor.apply(a, b, addSpecialTokens: addSpecialTokens)
    }

    /// The library's `truncate_encodings`.
    static func truncate(_ a: inout Encoding, _ b: inout Encoding?, maxLength: Int, _ t: Truncation) throws {
        if maxLength == 0 {   // no room at all: both emptied, whatever the strategy (as the library does)
            a.truncate(to: 0, fromLeft: t.fromLeft)
            b?.truncate(to: 0, fromLeft: t.fromLeft)
            return
        }
        let total = a.count + (b?.count ?? 0)
        guard total > maxLength else { return }
        switch t.strategy {
        case .longestFirst:
            guard var other = b else { a.truncate(to: maxLength, fromLeft: t.fromLeft); return }
            var n1 = a.count, n2 = other.count
            let swap = n1 > n2
            if swap { (n1, n2) = (n2, n1) }
            n2 = n1 > maxLength ? n1 : Swift.max(n1, maxLength - n1)
            if n1 + n2 > maxLength {
                n1 = maxLength / 2
                n2 = n1 + maxLength % 2
            }
            if swap { (n1, n2) = (n2, n1) }
            a.truncate(to: n1, fromLeft: t.fromLeft)
            other.truncate(to: n2, fromLeft: t.fromLeft)
            b = other
        case .onlyFirst, .onlySecond:
            let remove = total - maxLength
            if t.strategy == .onlyFirst {
                guard a.count > remove else { throw TokenizerError("truncation: the first sequence is too short to remove \(remove) tokens") }
                a.truncate(to: a.count - remove, fromLeft: t.fromLeft)
            } else {
                guard var other = b else { throw TokenizerError("truncation only_second: no second sequence was given") }
                guard other.count > remove else { throw TokenizerError("truncation: the second sequence is too short to remove \(remove) tokens") }
                other.truncate(to: other.count - remove, fromLeft: t.fromLeft)
                b = other
            }
        }
    }

    // MARK: Decoding

    /// The text of `ids` (unknown ids are skipped, as the library does), without special added tokens when asked.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        let special = Set(addedTokens.filter(\.special).map(\.id))
        let tokens = ids.compactMap { id -> String? in
            if skipSpecialTokens && special.contains(id) { return nil }
            return idToToken[id]
        }
        return decoder?.decodeChain(tokens).joined() ?? tokens.joined(separator: " ")
    }

    /// The token string of an id (model vocabulary or added token).
    public func token(for id: Int) -> String? { idToToken[id] }

    /// The id of a token string (added tokens first, then the model's vocabulary).
    public func id(for token: String) -> Int? {
        addedTokens.first { $0.content.unicodeScalars.elementsEqual(token.unicodeScalars) }?.id ?? model.id(for: token)
    }
}

/// Splits text on added tokens: at each position the longest token starting there (leftmost-longest, as the
/// library's Aho-Corasick matcher), compared scalar by scalar.
struct AddedTokenMatcher: Sendable {
    let tokens: [(scalars: [Unicode.Scalar], token: Tokenizer.AddedToken)]
    let firstScalars: Set<Unicode.Scalar>

    /// `added`: each token with the scalars to look for.
    init(_ added: [([Unicode.Scalar], Tokenizer.AddedToken)]) {
        tokens = added.filter { !$0.0.isEmpty }
        firstScalars = Set(tokens.map { $0.scalars[0] })
    }

    func split(_ text: ArraySlice<Unicode.Scalar>) -> [(text: ArraySlice<Unicode.Scalar>, token: Tokenizer.AddedToken?)] {
        guard !tokens.isEmpty else { return [(text, nil)] }
        var out: [(text: ArraySlice<Unicode.Scalar>, token: Tokenizer.AddedToken?)] = []
        var start = text.startIndex, i = text.startIndex
        while i < text.endIndex {
            guard firstScalars.contains(text[i]) else { i += 1; continue }
            var best: (length: Int, token: Tokenizer.AddedToken)?
            for (s, t) in tokens where s.count > (best?.length ?? 0) && i + s.count <= text.endIndex
                && text[i..<(i + s.count)].elementsEqual(s) {
                best = (s.count, t)
            }
            guard let best else { i += 1; continue }
            if start < i { out.append((text[start..<i], nil)) }
            out.append((text[i..<(i + best.length)], best.token))
            i += best.length
            start = i
        }
        if start < text.endIndex || out.isEmpty { out.append((text[start..<text.endIndex], nil)) }
        return out
    }
}
