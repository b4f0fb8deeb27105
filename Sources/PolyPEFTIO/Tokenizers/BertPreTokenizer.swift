/// The `BertPreTokenizer`: words are runs between whitespace (dropped); each punctuation scalar is a word of its own.
///
/// ```
/// "Hey friend!  How?!" -> Hey | friend | ! | How | ? | !
/// ```
public struct BertPreTokenizer: Sendable, Equatable {
    public init() {}

    /// The words of `text` as ranges of its indices.
    public func split(_ text: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var start = -1
        for (i, c) in text.enumerated() {
            if UnicodeClasses.isWhitespace(c) {
                if start >= 0 { words.append(start..<i); start = -1 }
            } else if UnicodeClasses.isPunctuation(c) {
                if start >= 0 { words.append(start..<i); start = -1 }
                words.append(i..<(i + 1))
            } else if start < 0 {
                start = i
            }
        }
        if start >= 0 { words.append(start..<text.count) }
        return words
    }
}
