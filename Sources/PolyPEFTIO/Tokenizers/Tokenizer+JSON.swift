import Foundation
import PolyPEFTCore

extension Tokenizer {
    /// Reads `tokenizer.json` (a file, or a folder holding one).
    public init(contentsOf url: URL) throws {
        var isFolder: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) && isFolder.boolValue
            ? url.appendingPathComponent("tokenizer.json") : url
        let parsed: (value: JSONValue, members: [(key: String, value: JSONValue)]?)
        do { parsed = try JSONParser.parse(bytes: [UInt8](try FileContents.read(file)), capturing: ["model", "vocab"]) }
        catch let e as JSONError { throw FileFormatError(path: file.path, "invalid JSON: \(e)") }
        do { try self.init(json: parsed.value, vocab: parsed.members) } catch let e as TokenizerError {
            throw FileFormatError(path: file.path, e.message)
        }
    }

    /// Builds the tokenizer a `tokenizer.json` object describes. A WordPiece vocabulary comes from `vocab` when
    /// given (see `JSONParser.parse(bytes:capturing:)`: keys that differ only by Unicode normalization stay apart),
    /// else from `model.vocab` in `json`.
    public init(json: JSONValue, vocab vocabMembers: [(key: String, value: JSONValue)]? = nil) throws {
        guard let root = json.objectValue else { throw TokenizerError("expected a JSON object") }
        let r = TokenizerJSON()
        guard let m = try r.object(root["model"], "model") else { throw TokenizerError("model is missing") }
        let model = try r.model(m, vocab: vocabMembers)
        let normalizer = try r.object(root["normalizer"], "normalizer").map { try r.normalizer($0, "normalizer") }
        let preTokenizer = try r.object(root["pre_tokenizer"], "pre_tokenizer").map { try r.preTokenizer($0, "pre_tokenizer") }
        let decoder = try r.object(root["decoder"], "decoder").map { try r.decoder($0, "decoder") }
        let post = try r.object(root["post_processor"], "post_processor").map { try r.postProcessor($0) }
        self.init(normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: post, decoder: decoder,
                  addedTokens: try r.addedTokens(root["added_tokens"]),
                  truncation: try r.object(root["truncation"], "truncation").map { try r.truncation($0) },
                  padding: try r.object(root["padding"], "padding").map { try r.padding($0) })
    }
}

/// Typed reads of `tokenizer.json`'s parts, each error naming the key path.
struct TokenizerJSON {
    typealias Object = [String: JSONValue]

    func object(_ v: JSONValue?, _ path: String) throws -> Object? {
        guard let v, v != .null else { return nil }
        guard let o = v.objectValue else { throw TokenizerError("\(path): expected an object, found \(v.kindName)") }
        return o
    }

    func int(_ o: Object, _ key: String, _ path: String, default d: Int? = nil) throws -> Int {
        guard let v = o[key], v != .null else {
            if let d { return d }
            throw TokenizerError("\(path).\(key) is missing")
        }
        guard let i = v.intValue, i >= 0, i <= Int(Int32.max) else {
            throw TokenizerError("\(path).\(key): expected a count or id, found \(v.compactString())")
        }
        return i
    }

    func bool(_ o: Object, _ key: String, _ path: String, default d: Bool) throws -> Bool {
        guard let v = o[key], v != .null else { return d }
        guard let b = v.boolValue else { throw TokenizerError("\(path).\(key): expected true or false, found \(v.compactString())") }
        return b
    }

    func string(_ o: Object, _ key: String, _ path: String, default d: String? = nil) throws -> String {
        guard let v = o[key], v != .null else {
            if let d { return d }
            throw TokenizerError("\(path).\(key) is missing")
        }
        guard let s = v.stringValue else { throw TokenizerError("\(path).\(key): expected a string, found \(v.compactString())") }
        return s
    }

    func scalar(_ o: Object, _ key: String, _ path: String, default d: String) throws -> Unicode.Scalar {
        let s = try string(o, key, path, default: d)
        guard s.unicodeScalars.count == 1 else { throw TokenizerError("\(path).\(key): expected one character, found \"\(s)\"") }
        return s.unicodeScalars.first!
    }

    func type(_ o: Object, _ path: String, supported: [String]) throws -> String {
        let t = try string(o, "type", path)
        guard supported.contains(t) else {
            throw TokenizerError("\(path) type \"\(t)\" is not supported (supported: \(supported.joined(separator: ", ")))")
        }
        return t
    }

    func list(_ o: Object, _ key: String, _ path: String) throws -> [(Object, String)] {
        guard let items = o[key]?.arrayValue else { throw TokenizerError("\(path).\(key): expected a list") }
        return try items.enumerated().map { i, item in
            let p = "\(path).\(key)[\(i)]"
            guard let obj = item.objectValue else { throw TokenizerError("\(p): expected an object") }
            return (obj, p)
        }
    }

    func model(_ m: Object, vocab members: [(key: String, value: JSONValue)]?) throws -> any TokenizerModel {
        switch try type(m, "model", supported: ["WordPiece", "Unigram"]) {
        case "Unigram":
            guard let items = m["vocab"]?.arrayValue else { throw TokenizerError("model.vocab: expected a list of [piece, score]") }
            let pieces = try items.enumerated().map { i, item -> (piece: String, score: Double) in
                guard let pair = item.arrayValue, pair.count == 2, let piece = pair[0].stringValue, let score = pair[1].doubleValue else {
                    throw TokenizerError("model.vocab[\(i)]: expected [piece, score]")
                }
                return (piece, score)
            }
            guard let unk = m["unk_id"]?.intValue else { throw TokenizerError("model.unk_id: an unknown-token id is required") }
            return try Unigram(pieces: pieces, unknownID: unk, byteFallback: try bool(m, "byte_fallback", "model", default: false))
        default:
            guard let members = members ?? m["vocab"]?.objectValue.map({ $0.map { ($0.key, $0.value) } }) else {
                throw TokenizerError("model.vocab: expected an object of token -> id")
            }
            var vocab: [(String, Int)] = []
            vocab.reserveCapacity(members.count)
            for (token, v) in members {
                guard let id = v.intValue, id >= 0, id <= Int(Int32.max) else {
                    throw TokenizerError("model.vocab[\"\(token)\"]: expected an id, found \(v.compactString())")
                }
                vocab.append((token, id))
            }
            return try WordPiece(vocab: vocab, unknownToken: try string(m, "unk_token", "model", default: "[UNK]"),
                                 continuingPrefix: try string(m, "continuing_subword_prefix", "model", default: "##"),
                                 maxInputCharsPerWord: try int(m, "max_input_chars_per_word", "model", default: 100))
        }
    }

    func normalizer(_ n: Object, _ path: String) throws -> any TextNormalizer {
        let forms = UnicodeNormalizer.Form.allNames
        switch try type(n, path, supported: ["BertNormalizer", "Precompiled", "Replace", "Strip", "Sequence"] + forms) {
        case "BertNormalizer":
            var strip: Bool?
            if let v = n["strip_accents"], v != .null {
                guard let b = v.boolValue else { throw TokenizerError("\(path).strip_accents: expected true, false or null") }
                strip = b
            }
            return BertNormalizer(cleanText: try bool(n, "clean_text", path, default: true),
                                  handleChineseChars: try bool(n, "handle_chinese_chars", path, default: true),
                                  stripAccents: strip, lowercase: try bool(n, "lowercase", path, default: true))
        case "Precompiled":
            let encoded = try string(n, "precompiled_charsmap", path)
            guard let data = Data(base64Encoded: encoded) else { throw TokenizerError("\(path).precompiled_charsmap: not base64") }
            return try PrecompiledNormalizer(charsmap: [UInt8](data))
        case "Replace":
            let content = try string(n, "content", path)
            let (text, regex) = try pattern(n, path)
            return try regex ? ReplaceNormalizer(regex: text, content: content) : ReplaceNormalizer(string: text, content: content)
        case "Strip":
            return StripNormalizer(left: try bool(n, "strip_left", path, default: true), right: try bool(n, "strip_right", path, default: true))
        case "Sequence":
            return NormalizerSequence(try list(n, "normalizers", path).map { try normalizer($0.0, $0.1) })
        case let form:
            return UnicodeNormalizer(UnicodeNormalizer.Form(rawValue: form)!)
        }
    }

    /// A `Replace`'s pattern: `{"String": s}` or `{"Regex": r}`.
    func pattern(_ o: Object, _ path: String) throws -> (String, regex: Bool) {
        guard let p = o["pattern"]?.objectValue, p.count == 1 else { throw TokenizerError("\(path).pattern: expected {\"String\": ...} or {\"Regex\": ...}") }
        if let s = p["String"]?.stringValue { return (s, false) }
        if let r = p["Regex"]?.stringValue { return (r, true) }
        throw TokenizerError("\(path).pattern: expected {\"String\": ...} or {\"Regex\": ...}")
    }

    func preTokenizer(_ p: Object, _ path: String) throws -> any PreTokenizer {
        switch try type(p, path, supported: ["BertPreTokenizer", "WhitespaceSplit", "Metaspace", "Sequence"]) {
        case "BertPreTokenizer": return BertPreTokenizer()
        case "WhitespaceSplit": return WhitespaceSplit()
        case "Metaspace": return try metaspace(p, path)
        default: return PreTokenizerSequence(try list(p, "pretokenizers", path).map { try preTokenizer($0.0, $0.1) })
        }
    }

    func metaspace(_ o: Object, _ path: String) throws -> Metaspace {
        var scheme = Metaspace.PrependScheme.always
        if let v = o["prepend_scheme"], v != .null {
            guard let s = v.stringValue, let parsed = Metaspace.PrependScheme(rawValue: s) else {
                throw TokenizerError("\(path).prepend_scheme: expected \"always\", \"first\" or \"never\", found \(v.compactString())")
            }
            scheme = parsed
        }
        if let v = o["add_prefix_space"], v != .null {
            guard let add = v.boolValue else { throw TokenizerError("\(path).add_prefix_space: expected true or false") }
            if !add && o["prepend_scheme"] == nil { scheme = .never }
            guard add || scheme == .never else {
                throw TokenizerError("\(path): add_prefix_space false contradicts prepend_scheme \"\(scheme.rawValue)\"")
            }
        }
        return Metaspace(replacement: try scalar(o, "replacement", path, default: "\u{2581}"), prependScheme: scheme,
                         split: try bool(o, "split", path, default: true))
    }

    func decoder(_ d: Object, _ path: String) throws -> any TokenDecoder {
        switch try type(d, path, supported: ["WordPiece", "Metaspace", "ByteFallback", "Fuse", "Strip", "Replace", "Sequence"]) {
        case "WordPiece":
            return WordPieceDecoder(prefix: try string(d, "prefix", path, default: "##"), cleanup: try bool(d, "cleanup", path, default: true))
        case "Metaspace": return try metaspace(d, path)
        case "ByteFallback": return ByteFallbackDecoder()
        case "Fuse": return FuseDecoder()
        case "Strip":
            return StripDecoder(content: try scalar(d, "content", path, default: " "), start: try int(d, "start", path, default: 0),
                                stop: try int(d, "stop", path, default: 0))
        case "Replace":
            let (text, regex) = try pattern(d, path)
            guard !regex else { throw TokenizerError("\(path): a Replace decoder with a Regex pattern is not supported") }
            return ReplaceDecoder(pattern: text, content: try string(d, "content", path))
        default:
            return DecoderSequence(try list(d, "decoders", path).map { try decoder($0.0, $0.1) })
        }
    }

    func addedTokens(_ v: JSONValue?) throws -> [Tokenizer.AddedToken] {
        guard let v, v != .null else { return [] }
        guard let items = v.arrayValue else { throw TokenizerError("added_tokens: expected a list") }
        return try items.enumerated().map { i, item in
            let path = "added_tokens[\(i)]"
            guard let o = item.objectValue else { throw TokenizerError("\(path): expected an object") }
            for key in ["single_word", "lstrip", "rstrip"] where try bool(o, key, path, default: false) {
                throw TokenizerError("\(path).\(key) = true is not supported")
            }
            return Tokenizer.AddedToken(id: try int(o, "id", path), content: try string(o, "content", path),
                                        special: try bool(o, "special", path, default: false),
                                        normalized: try bool(o, "normalized", path, default: true))
        }
    }

    func postProcessor(_ p: Object) throws -> TemplateProcessing {
        if try type(p, "post_processor", supported: ["TemplateProcessing", "BertProcessing"]) == "BertProcessing" {
            func pair(_ key: String) throws -> (String, Int) {
                guard let a = p[key]?.arrayValue, a.count == 2, let s = a[0].stringValue, let id = a[1].intValue,
                      id >= 0, id <= Int(Int32.max) else {
                    throw TokenizerError("post_processor.\(key): expected [token, id] with an id >= 0")
                }
                return (s, id)
            }
            return try .bert(cls: try pair("cls"), sep: try pair("sep"))
        }
        func pieces(_ key: String) throws -> [TemplateProcessing.Piece] {
            try list(p, key, "post_processor").map { item, path in
                if let s = try object(item["SpecialToken"], path) {
                    return .special(try string(s, "id", path), typeID: try int(s, "type_id", path, default: 0))
                }
                if let s = try object(item["Sequence"], path) {
                    let which = try string(s, "id", path)
                    guard which == "A" || which == "B" else { throw TokenizerError("\(path).id: expected \"A\" or \"B\", found \"\(which)\"") }
                    return .sequence(isPair: which == "B", typeID: try int(s, "type_id", path, default: 0))
                }
                throw TokenizerError("\(path): expected {\"SpecialToken\": ...} or {\"Sequence\": ...}")
            }
        }
        var specials: [String: (ids: [Int], tokens: [String])] = [:]
        for (name, v) in try object(p["special_tokens"], "post_processor.special_tokens") ?? [:] {
            let path = "post_processor.special_tokens[\"\(name)\"]"
            guard let o = v.objectValue, let idList = o["ids"]?.arrayValue, let tokenList = o["tokens"]?.arrayValue else {
                throw TokenizerError("\(path): expected {\"ids\": [...], \"tokens\": [...]}")
            }
            let ids = try idList.enumerated().map { i, v -> Int in
                guard let id = v.intValue, id >= 0, id <= Int(Int32.max) else {
                    throw TokenizerError("\(path).ids[\(i)]: expected an id, found \(v.compactString())")
                }
                return id
            }
            let tokens = try tokenList.enumerated().map { i, v -> String in
                guard let s = v.stringValue else { throw TokenizerError("\(path).tokens[\(i)]: expected a string, found \(v.compactString())") }
                return s
            }
            specials[name] = (ids, tokens)
        }
        return try TemplateProcessing(single: try pieces("single"), pair: try pieces("pair"), specialTokens: specials)
    }

    func truncation(_ t: Object) throws -> Tokenizer.Truncation {
        let name = try string(t, "strategy", "truncation", default: "LongestFirst")
        guard let strategy = Tokenizer.Truncation.Strategy(rawValue: name) else { throw TokenizerError("truncation.strategy \"\(name)\" is not supported") }
        return Tokenizer.Truncation(maxLength: try int(t, "max_length", "truncation"), strategy: strategy,
                                    fromLeft: try string(t, "direction", "truncation", default: "Right") == "Left")
    }

    func padding(_ p: Object) throws -> Tokenizer.Padding {
        var length: Int?
        if let fixed = p["strategy"]?.objectValue {
            length = try int(fixed, "Fixed", "padding.strategy")
        } else if p["strategy"]?.stringValue != "BatchLongest" {
            throw TokenizerError("padding.strategy: expected \"BatchLongest\" or {\"Fixed\": n}")
        }
        let multiple = p["pad_to_multiple_of"] == nil || p["pad_to_multiple_of"] == .null ? nil
            : try int(p, "pad_to_multiple_of", "padding")
        for n in [length, multiple].compactMap({ $0 }) where n > Tokenizer.maxPaddedLength {
            throw TokenizerError("padding: \(n) tokens is more than \(Tokenizer.maxPaddedLength)")
        }
        return Tokenizer.Padding(length: length, multipleOf: multiple,
                                 left: try string(p, "direction", "padding", default: "Right") == "Left",
                                 id: try int(p, "pad_id", "padding", default: 0), typeID: try int(p, "pad_type_id", "padding", default: 0),
                                 token: try string(p, "pad_token", "padding", default: "[PAD]"))
    }
}

extension UnicodeNormalizer.Form {
    static var allNames: [String] { ["NFC", "NFD", "NFKC", "NFKD", "Lowercase"] }
}
