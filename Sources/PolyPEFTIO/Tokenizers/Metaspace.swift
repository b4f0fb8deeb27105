/// `Metaspace` (SentencePiece's view of spaces), as pre-tokenizer and as decoder.
///
/// ```
/// pre-tokenize: " " -> "▁"; prepend "▁" (always; first: only to the piece that starts the input; never) unless
///               the piece already starts with it; with split, cut before every "▁" ("▁Hello", "▁world")
/// decode:       "▁" -> " " in every token, except that the first token's "▁" are dropped (unless never)
/// ```
public struct Metaspace: PreTokenizer, TokenDecoder, Equatable {
    public enum PrependScheme: String, Sendable { case always, first, never }
    public var replacement: Unicode.Scalar = "\u{2581}"
    public var prependScheme: PrependScheme = .always
    public var split = true

    public init(replacement: Unicode.Scalar = "\u{2581}", prependScheme: PrependScheme = .always, split: Bool = true) {
        self.replacement = replacement
        self.prependScheme = prependScheme
        self.split = split
    }

    public func split(_ piece: TextPiece) -> [TextPiece] {
        var text = piece.scalars.map { $0 == " " ? replacement : $0 }
        let prepend = prependScheme == .always || (prependScheme == .first && piece.atStart)
        if prepend && text.first != replacement { text.insert(replacement, at: 0) }
        guard split else { return [TextPiece(text[...], atStart: piece.atStart)] }
        var words: [TextPiece] = []
        var start = 0
        for i in text.indices where i > start && text[i] == replacement {
            words.append(TextPiece(text[start..<i], atStart: piece.atStart && start == 0))
            start = i
        }
        if start < text.count { words.append(TextPiece(text[start...], atStart: piece.atStart && start == 0)) }
        return words
    }

    public func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            var v = String.UnicodeScalarView()
            for c in token.unicodeScalars {
                if c == replacement {
                    if !(i == 0 && prependScheme != .never) { v.append(" ") }
                } else {
                    v.append(c)
                }
            }
            return String(v)
        }
    }
}

/// `ByteFallback` decoder: runs of `<0xHH>` tokens become the text of their bytes (or one U+FFFD per byte when the
/// bytes are not UTF-8).
public struct ByteFallbackDecoder: TokenDecoder, Equatable {
    public init() {}

    public func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = [], bytes: [UInt8] = []
        func flush() {
            guard !bytes.isEmpty else { return }
            if let s = String(validating: bytes, as: UTF8.self) { out.append(s) } else {
                out += [String](repeating: "\u{FFFD}", count: bytes.count)
            }
            bytes.removeAll()
        }
        for token in tokens {
            let u = Array(token.utf8)
            if u.count == 6, u.starts(with: Array("<0x".utf8)), u[5] == UInt8(ascii: ">"),
               let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                bytes.append(b)
            } else {
                flush()
                out.append(token)
            }
        }
        flush()
        return out
    }
}

/// `Fuse` decoder: all tokens joined into one.
public struct FuseDecoder: TokenDecoder, Equatable {
    public init() {}
    public func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// `Strip` decoder: up to `start` leading and `stop` trailing `content` scalars removed from each token.
public struct StripDecoder: TokenDecoder, Equatable {
    public var content: Unicode.Scalar
    public var start: Int
    public var stop: Int

    public init(content: Unicode.Scalar, start: Int, stop: Int) {
        self.content = content
        self.start = start
        self.stop = stop
    }

    public func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            let s = Array(token.unicodeScalars)
            var lo = 0, hi = s.count
            while lo < Swift.min(start, s.count) && s[lo] == content { lo += 1 }
            var k = 0
            while k < stop && hi > lo && s[hi - 1] == content { hi -= 1; k += 1 }
            return Array(s[lo..<hi]).string
        }
    }
}

/// `Replace` decoder: every occurrence of a literal string replaced in each token.
public struct ReplaceDecoder: TokenDecoder, Equatable {
    public var pattern: String
    public var content: String

    public init(pattern: String, content: String) {
        self.pattern = pattern
        self.content = content
    }

    public func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map {
            WordPieceDecoder.replacing(Array($0.unicodeScalars), Array(pattern.unicodeScalars), Array(content.unicodeScalars)).string
        }
    }
}
