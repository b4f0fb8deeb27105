/// The post-processor that adds special tokens around one or two sequences, with the token type of each part:
///
/// ```
/// single: [CLS]:0 $A:0 [SEP]:0                 pair: [CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1       (BERT)
/// ```
/// `BertProcessing` (`cls`, `sep`) is this template.
public struct TemplateProcessing: Sendable, Equatable {
    public enum Piece: Sendable, Equatable {
        /// A special token by its name in `specialTokens`.
        case special(String, typeID: Int)
        /// The first (`isPair` false) or second sequence.
        case sequence(isPair: Bool, typeID: Int)
    }

    public let single: [Piece]
    public let pair: [Piece]
    /// Name -> ids and token strings (one name may stand for several tokens).
    public let specialTokens: [String: (ids: [Int], tokens: [String])]

    public init(single: [Piece], pair: [Piece], specialTokens: [String: (ids: [Int], tokens: [String])]) throws {
        for p in single + pair {
            guard case let .special(name, _) = p else { continue }
            guard let s = specialTokens[name] else {
                throw TokenizerError("post_processor: the template names special token \"\(name)\", which special_tokens does not define")
            }
            guard s.ids.count == s.tokens.count, s.ids.allSatisfy({ $0 >= 0 }) else {
                throw TokenizerError("post_processor.special_tokens[\"\(name)\"]: \(s.ids.count) ids (non-negative) for \(s.tokens.count) tokens")
            }
        }
        self.single = single
        self.pair = pair
        self.specialTokens = specialTokens
    }

    /// BERT's template from `BertProcessing`'s `cls` and `sep`.
    public static func bert(cls: (String, Int), sep: (String, Int)) throws -> TemplateProcessing {
        try TemplateProcessing(
            single: [.special(cls.0, typeID: 0), .sequence(isPair: false, typeID: 0), .special(sep.0, typeID: 0)],
            pair: [.special(cls.0, typeID: 0), .sequence(isPair: false, typeID: 0), .special(sep.0, typeID: 0),
                   .sequence(isPair: true, typeID: 1), .special(sep.0, typeID: 1)],
            specialTokens: [cls.0: ([cls.1], [cls.0]), sep.0: ([sep.1], [sep.0])])
    }

    /// How many tokens the template adds.
    public func addedTokenCount(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, p in
            if case let .special(name, _) = p { return n + (specialTokens[name]?.ids.count ?? 0) }
            return n
        }
    }

    /// The template filled with `a` (and `b`); each sequence takes its piece's type id. Without special tokens,
    /// only the sequences (still with the template's type ids), as the library does.
    func apply(_ a: Encoding, _ b: Encoding?, addSpecialTokens: Bool = true) -> Encoding {
        var out = Encoding()
        for p in b == nil ? single : pair {
            switch p {
            case let .special(name, typeID):
                guard addSpecialTokens, let s = specialTokens[name] else { continue }
                for (id, token) in zip(s.ids, s.tokens) { out.append(id: id, token: token, typeID: typeID, special: true) }
            case let .sequence(isPair, typeID):
                if let e = isPair ? b : a { out.append(e, typeID: typeID) }
            }
        }
        return out
    }

    public static func == (l: TemplateProcessing, r: TemplateProcessing) -> Bool {
        l.single == r.single && l.pair == r.pair && l.specialTokens.keys == r.specialTokens.keys
            && l.specialTokens.allSatisfy { k, v in r.specialTokens[k]!.ids == v.ids && r.specialTokens[k]!.tokens == v.tokens }
    }
}
