/// One encoded input: ids with their token strings, token types (segment A = 0, B = 1 in BERT's template), which
/// tokens are special (added by the template or padding; a special token written in the text is not, as in the
/// library), and the attention mask (0 on padding).
public struct Encoding: Sendable, Equatable {
    public var ids: [Int]
    public var tokens: [String]
    public var typeIDs: [Int]
    public var specialTokensMask: [Int]
    public var attentionMask: [Int]

    public init(ids: [Int] = [], tokens: [String] = [], typeIDs: [Int] = [], specialTokensMask: [Int] = [], attentionMask: [Int] = []) {
        self.ids = ids
        self.tokens = tokens
        self.typeIDs = typeIDs
        self.specialTokensMask = specialTokensMask
        self.attentionMask = attentionMask
    }

    public var count: Int { ids.count }

    mutating func append(id: Int, token: String, typeID: Int, special: Bool) {
        ids.append(id)
        tokens.append(token)
        typeIDs.append(typeID)
        specialTokensMask.append(special ? 1 : 0)
        attentionMask.append(1)
    }

    mutating func append(_ other: Encoding, typeID: Int) {
        ids += other.ids
        tokens += other.tokens
        typeIDs += [Int](repeating: typeID, count: other.count)
        specialTokensMask += other.specialTokensMask
        attentionMask += other.attentionMask
    }

    /// Keeps the first `n` tokens (right truncation) or the last `n` (left).
    mutating func truncate(to n: Int, fromLeft: Bool) {
        guard count > n else { return }
        func cut<T>(_ a: [T]) -> [T] { fromLeft ? Array(a.suffix(n)) : Array(a.prefix(n)) }
        ids = cut(ids); tokens = cut(tokens); typeIDs = cut(typeIDs)
        specialTokensMask = cut(specialTokensMask); attentionMask = cut(attentionMask)
    }

    /// Pads to `length` with the pad token (mask 0, special 1), on the right or the left.
    mutating func pad(to length: Int, id: Int, typeID: Int, token: String, left: Bool) {
        let n = length - count
        guard n > 0 else { return }
        func extend<T>(_ a: inout [T], _ v: T) { a = left ? [T](repeating: v, count: n) + a : a + [T](repeating: v, count: n) }
        extend(&ids, id); extend(&tokens, token); extend(&typeIDs, typeID)
        extend(&specialTokensMask, 1); extend(&attentionMask, 0)
    }
}
