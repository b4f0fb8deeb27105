import Foundation

/// The `BertNormalizer` of `tokenizer.json`, in the library's order:
///
/// ```
/// clean_text            drop NUL, U+FFFD and controls; every whitespace becomes " "
/// handle_chinese_chars  " " c " " around each CJK ideograph
/// strip_accents         NFD, then drop nonspacing marks (Mn); default: the value of lowercase
/// lowercase             each scalar's full lowercase mapping (no context: a final sigma stays σ)
/// ```
public struct BertNormalizer: TextNormalizer, Equatable {
    public var cleanText = true
    public var handleChineseChars = true
    public var stripAccents: Bool? = nil
    public var lowercase = true

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// Normalizes `text` (scalars in, scalars out).
    public func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var s: [Unicode.Scalar] = []
        s.reserveCapacity(text.count + text.count / 8)
        var ascii = true
        for c in text {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || UnicodeClasses.isControl(c) { continue }
                if UnicodeClasses.isWhitespace(c) { s.append(" "); continue }
            }
            if handleChineseChars && UnicodeClasses.isChinese(c) {
                s.append(" "); s.append(c); s.append(" ")
            } else {
                s.append(c)
            }
            if c.value >= 0x80 { ascii = false }
        }
        if stripAccents ?? lowercase, !ascii {
            var t = String.UnicodeScalarView()
            t.append(contentsOf: s)
            s = String(t).decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase {
            if ascii {
                for i in s.indices where s[i].value >= 65 && s[i].value <= 90 { s[i] = Unicode.Scalar(s[i].value + 32)! }
            } else {
                var out: [Unicode.Scalar] = []
                out.reserveCapacity(s.count)
                for c in s {
                    if c.value < 0x80 {
                        out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
                    } else if c.properties.changesWhenLowercased {
                        out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
                    } else {
                        out.append(c)
                    }
                }
                s = out
            }
        }
        return s
    }
}
