/// The character classes the `tokenizers` library (Rust) uses, on Unicode scalars, as `BertNormalizer` and
/// `BertPreTokenizer` apply them:
///
/// ```
/// whitespace     \t \n \r, or White_Space                          (Rust's char::is_whitespace)
/// control        Cc Cf Co Cs, not \t \n \r                        (removed by clean_text; unassigned code points
///                                                                  are kept, as the library keeps them)
/// punctuation    ASCII punctuation, or Pc Pd Pe Pf Pi Po Ps        (isolated by BertPreTokenizer)
/// chinese        the CJK Unified Ideographs blocks                 (spaced by handle_chinese_chars)
/// ```
enum UnicodeClasses {
    @inline(__always)
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c == " " || (c.value >= 9 && c.value <= 13) }
        return c.properties.isWhitespace
    }

    @inline(__always)
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c.value < 32 && c != "\t" && c != "\n" && c != "\r" || c.value == 127 }
        switch c.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    @inline(__always)
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation,
             .otherPunctuation, .openPunctuation: return true
        default: return false
        }
    }

    @inline(__always)
    static func isChinese(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}
