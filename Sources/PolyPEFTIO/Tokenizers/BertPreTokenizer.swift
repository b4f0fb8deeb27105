/// The `BertPreTokenizer`: words are runs between whitespace (dropped); each punctuation scalar is a word of its own.
///
/// ```
/// "Hey friend!  How?!" -> Hey | friend | ! | How | ? | !
/// ```
public struct BertPreTokenizer: PreTokenizer, Equatable {
    public init() {}

    public func split(_ piece: TextPiece) -> [TextPiece] {
        let text = piece.scalars
        var words: [TextPiece] = []
        func word(_ r: Range<Int>) { words.append(TextPiece(text[r], atStart: piece.atStart && r.lowerBound == text.startIndex)) }
        var start = -1
        for i in text.indices {
            let c = text[i]
            if UnicodeClasses.isWhitespace(c) {
                if start >= 0 { word(start..<i); start = -1 }
            } else if UnicodeClasses.isPunctuation(c) {
                if start >= 0 { word(start..<i); start = -1 }
                word(i..<(i + 1))
            } else if start < 0 {
                start = i
            }
        }
        if start >= 0 { word(start..<text.endIndex) }
        return words
    }
}

/// `WhitespaceSplit`: words are the runs between whitespace (White_Space scalars), which is dropped.
public struct WhitespaceSplit: PreTokenizer, Equatable {
    public init() {}

    public func split(_ piece: TextPiece) -> [TextPiece] {
        let text = piece.scalars
        var words: [TextPiece] = []
        var start = -1
        for i in text.indices {
            if UnicodeClasses.isWhitespace(text[i]) {
                if start >= 0 { words.append(TextPiece(text[start..<i], atStart: piece.atStart && start == text.startIndex)); start = -1 }
            } else if start < 0 {
                start = i
            }
        }
        if start >= 0 { words.append(TextPiece(text[start..<text.endIndex], atStart: piece.atStart && start == text.startIndex)) }
        return words
    }
}
