import Foundation

/// `Precompiled`: SentencePiece's compiled normalization rules (`precompiled_charsmap`, e.g. `nmt_nfkc`), applied
/// as the library applies them.
///
/// ```
/// charsmap = u32 trie_size | trie_size / 4 double-array units (darts-clone) | NUL-terminated replacements
/// for each grapheme g:  if |g| < 6 bytes and the trie matches a prefix of g: g -> the first (shortest) match's text
///                       else each scalar c: c -> its match's text, or c
/// ```
public struct PrecompiledNormalizer: TextNormalizer {
    let units: [UInt32]
    let replacements: [UInt8]
    /// `asciiReplacements`, computed at init.
    private(set) var asciiTable: [[Unicode.Scalar]?] = []

    public init(charsmap: [UInt8]) throws {
        guard charsmap.count >= 4 else { throw TokenizerError("precompiled_charsmap: shorter than its 4-byte header") }
        let trieSize = Int(charsmap[0]) | Int(charsmap[1]) << 8 | Int(charsmap[2]) << 16 | Int(charsmap[3]) << 24
        guard trieSize % 4 == 0, trieSize > 0, 4 + trieSize <= charsmap.count else {
            throw TokenizerError("precompiled_charsmap: a trie of \(trieSize) bytes does not fit the \(charsmap.count - 4) that follow")
        }
        units = stride(from: 4, to: 4 + trieSize, by: 4).map {
            UInt32(charsmap[$0]) | UInt32(charsmap[$0 + 1]) << 8 | UInt32(charsmap[$0 + 2]) << 16 | UInt32(charsmap[$0 + 3]) << 24
        }
        replacements = Array(charsmap[(4 + trieSize)...])
        asciiTable = asciiReplacements
    }

    /// The replacement text of the shortest key that is a prefix of `key`, if any (bounds-checked: a malformed
    /// trie ends the search).
    func transform(_ key: [UInt8]) -> [UInt8]? {
        func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        var pos = offset(units[0])
        for c in key {
            if c == 0 { return nil }
            pos ^= Int(c)
            guard pos < units.count else { return nil }
            let u = units[pos]
            guard u & ((1 << 31) | 0xFF) == UInt32(c) else { return nil }
            pos ^= offset(u)
            if (u >> 8) & 1 == 1 {
                guard pos < units.count else { return nil }
                let start = Int(units[pos] & ((1 << 31) - 1))
                guard start <= replacements.count else { return nil }
                var end = start
                while end < replacements.count && replacements[end] != 0 { end += 1 }
                return Array(replacements[start..<end])
            }
        }
        return nil
    }

    /// The replacement of each ASCII scalar standing alone as a grapheme, looked up once.
    var asciiReplacements: [[Unicode.Scalar]?] {
        (0..<128).map { b in transform([UInt8(b)]).map { Array(String(decoding: $0, as: UTF8.self).unicodeScalars) } }
    }

    public func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        // An ASCII scalar between ASCII neighbours (and not half of CR LF) is a grapheme of its own: one table
        // look-up. The other stretches go through grapheme segmentation; they begin and end at ASCII-ASCII
        // boundaries, which are grapheme boundaries, so segmenting them apart changes nothing.
        let n = text.count
        func isASCII(_ i: Int) -> Bool { i < 0 || i >= n || text[i].value < 0x80 }
        func alone(_ i: Int) -> Bool {
            isASCII(i) && isASCII(i - 1) && isASCII(i + 1)
                && !(text[i] == "\r" && i + 1 < n && text[i + 1] == "\n") && !(text[i] == "\n" && i > 0 && text[i - 1] == "\r")
        }
        let table = asciiTable
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(n)
        var i = 0
        while i < n {
            if alone(i) {
                if let r = table[Int(text[i].value)] { out.append(contentsOf: r) } else { out.append(text[i]) }
                i += 1
                continue
            }
            var j = i + 1
            while j < n && !alone(j) { j += 1 }
            normalizeGraphemes(Array(text[i..<j]), into: &out)
            i = j
        }
        return out
    }

    func normalizeGraphemes(_ text: [Unicode.Scalar], into out: inout [Unicode.Scalar]) {
        for g in text.string {
            let bytes = Array(String(g).utf8)
            if bytes.count < 6, let r = transform(bytes) {
                out.append(contentsOf: String(decoding: r, as: UTF8.self).unicodeScalars)
                continue
            }
            for c in g.unicodeScalars {
                if let r = transform(Array(String(c).utf8)) {
                    out.append(contentsOf: String(decoding: r, as: UTF8.self).unicodeScalars)
                } else {
                    out.append(c)
                }
            }
        }
    }
}

/// `Replace`: every match of a literal string or a regular expression replaced by `content` (an empty literal
/// pattern changes nothing).
public struct ReplaceNormalizer: TextNormalizer {
    enum Pattern: Sendable { case literal([Unicode.Scalar]), regex(NSRegularExpression) }
    let pattern: Pattern
    let content: String

    public init(string: String, content: String) {
        pattern = .literal(Array(string.unicodeScalars))
        self.content = content
    }

    public init(regex: String, content: String) throws {
        do { pattern = .regex(try NSRegularExpression(pattern: regex)) } catch {
            throw TokenizerError("Replace: the regular expression \"\(regex)\" does not compile")
        }
        self.content = content
    }

    public func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch pattern {
        case let .literal(p):
            return p.isEmpty ? text : WordPieceDecoder.replacing(text, p, Array(content.unicodeScalars))
        case let .regex(re):
            let s = text.string
            let replaced = re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s),
                                                       withTemplate: NSRegularExpression.escapedTemplate(for: content))
            return Array(replaced.unicodeScalars)
        }
    }
}

/// The Unicode normalization forms, `Lowercase` and `Strip`, as the library's normalizers of those names.
public struct UnicodeNormalizer: TextNormalizer {
    public enum Form: String, Sendable { case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD", lowercase = "Lowercase" }
    public let form: Form

    public init(_ form: Form) { self.form = form }

    public func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        let s = text.string
        switch form {
        case .nfc: return Array(s.precomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfd: return Array(s.decomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfkc: return Array(s.precomposedStringWithCompatibilityMapping.unicodeScalars)
        case .nfkd: return Array(s.decomposedStringWithCompatibilityMapping.unicodeScalars)
        case .lowercase: return text.flatMap { Array($0.properties.lowercaseMapping.unicodeScalars) }
        }
    }
}

/// `Strip`: whitespace removed from the left and / or the right end.
public struct StripNormalizer: TextNormalizer {
    public let left: Bool
    public let right: Bool

    public init(left: Bool, right: Bool) {
        self.left = left
        self.right = right
    }

    public func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var lo = 0, hi = text.count
        if left { while lo < hi && UnicodeClasses.isWhitespace(text[lo]) { lo += 1 } }
        if right { while hi > lo && UnicodeClasses.isWhitespace(text[hi - 1]) { hi -= 1 } }
        return Array(text[lo..<hi])
    }
}
