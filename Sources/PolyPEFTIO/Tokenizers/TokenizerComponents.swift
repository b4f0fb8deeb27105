/// The stages of a `Tokenizer`, one protocol each, as `tokenizer.json` names them (`normalizer`, `pre_tokenizer`,
/// `model`, `decoder`). Text is handled as Unicode scalars: the library works on Rust `char`s, which are scalars.
public protocol TextNormalizer: Sendable {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar]
}

/// A piece of text between pre-tokenization steps; `atStart` when it begins the input (Metaspace's `first`).
public struct TextPiece: Sendable {
    public var scalars: ArraySlice<Unicode.Scalar>
    public var atStart: Bool

    public init(_ scalars: ArraySlice<Unicode.Scalar>, atStart: Bool) {
        self.scalars = scalars
        self.atStart = atStart
    }
}

public protocol PreTokenizer: Sendable {
    /// Splits one piece into words.
    func split(_ piece: TextPiece) -> [TextPiece]
}

public protocol TokenizerModel: Sendable {
    /// Appends the ids of `word`'s tokens to `ids`.
    func tokenize(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int])
    /// Every token of the vocabulary with its id, token strings distinct as bytes.
    var tokens: [(token: String, id: Int)] { get }
    /// The id of a token, compared as UTF-8 bytes.
    func id(for token: String) -> Int?
}

public protocol TokenDecoder: Sendable {
    /// The library's `decode_chain`: tokens in, tokens out (the caller joins them).
    func decodeChain(_ tokens: [String]) -> [String]
}

/// Normalizers applied in order (`Sequence`).
public struct NormalizerSequence: TextNormalizer {
    public var normalizers: [any TextNormalizer]
    public init(_ normalizers: [any TextNormalizer]) { self.normalizers = normalizers }
    public func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { normalizers.reduce(text) { $1.normalize($0) } }
}

/// Pre-tokenizers applied in order, each to every piece the previous one made (`Sequence`).
public struct PreTokenizerSequence: PreTokenizer {
    public var preTokenizers: [any PreTokenizer]
    public init(_ preTokenizers: [any PreTokenizer]) { self.preTokenizers = preTokenizers }
    public func split(_ piece: TextPiece) -> [TextPiece] {
        preTokenizers.reduce([piece]) { pieces, p in pieces.flatMap { p.split($0) } }
    }
}

/// Decoders applied in order (`Sequence`).
public struct DecoderSequence: TokenDecoder {
    public var decoders: [any TokenDecoder]
    public init(_ decoders: [any TokenDecoder]) { self.decoders = decoders }
    public func decodeChain(_ tokens: [String]) -> [String] { decoders.reduce(tokens) { $1.decodeChain($0) } }
}

extension Sequence where Element == Unicode.Scalar {
    /// The scalars as a `String`.
    var string: String { var v = String.UnicodeScalarView(); v.append(contentsOf: self); return String(v) }
}
