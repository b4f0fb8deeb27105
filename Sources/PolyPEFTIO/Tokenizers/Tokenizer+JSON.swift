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

    /// Builds the tokenizer a `tokenizer.json` object describes. The vocabulary comes from `vocab` when given (see
    /// `JSONParser.parse(bytes:capturing:)`: keys that differ only by Unicode normalization stay apart), else from
    /// `model.vocab` in `json`.
    public init(json: JSONValue, vocab vocabMembers: [(key: String, value: JSONValue)]? = nil) throws {
        guard let root = json.objectValue else { throw TokenizerError("expected a JSON object") }
        func object(_ v: JSONValue?, _ key: String) throws -> [String: JSONValue]? {
            guard let v, v != .null else { return nil }
            guard let o = v.objectValue else { throw TokenizerError("\(key): expected an object, found \(v.kindName)") }
            return o
        }
        func int(_ o: [String: JSONValue], _ key: String, _ path: String, default d: Int? = nil) throws -> Int {
            guard let v = o[key], v != .null else {
                if let d { return d }
                throw TokenizerError("\(path).\(key) is missing")
            }
            guard let i = v.intValue, i >= 0, i <= Int(Int32.max) else { throw TokenizerError("\(path).\(key): expected a count or id, found \(v.compactString())") }
            return i
        }
        func bool(_ o: [String: JSONValue], _ key: String, _ path: String, default d: Bool) throws -> Bool {
            guard let v = o[key], v != .null else { return d }
            guard let b = v.boolValue else { throw TokenizerError("\(path).\(key): expected true or false, found \(v.compactString())") }
            return b
        }
        func string(_ o: [String: JSONValue], _ key: String, _ path: String, default d: String? = nil) throws -> String {
            guard let v = o[key], v != .null else {
                if let d { return d }
                throw TokenizerError("\(path).\(key) is missing")
            }
            guard let s = v.stringValue else { throw TokenizerError("\(path).\(key): expected a string, found \(v.compactString())") }
            return s
        }
        func type(_ o: [String: JSONValue], _ path: String, supported: [String]) throws -> String {
            let t = try string(o, "type", path)
            guard supported.contains(t) else {
                throw TokenizerError("\(path) type \"\(t)\" is not supported (supported: \(supported.joined(separator: ", ")))")
            }
            return t
        }

        // Model.
        guard let m = try object(root["model"], "model") else { throw TokenizerError("model is missing") }
        _ = try type(m, "model", supported: ["WordPiece"])
        guard let members = vocabMembers ?? m["vocab"]?.objectValue.map({ $0.map { ($0.key, $0.value) } }) else {
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
        let model = try WordPiece(vocab: vocab, unknownToken: try string(m, "unk_token", "model", default: "[UNK]"),
                                  continuingPrefix: try string(m, "continuing_subword_prefix", "model", default: "##"),
                                  maxInputCharsPerWord: try int(m, "max_input_chars_per_word", "model", default: 100))

        // Normalizer and pre-tokenizer.
        var normalizer: BertNormalizer?
        if let n = try object(root["normalizer"], "normalizer") {
            _ = try type(n, "normalizer", supported: ["BertNormalizer"])
            var strip: Bool?
            if let v = n["strip_accents"], v != .null {
                guard let b = v.boolValue else { throw TokenizerError("normalizer.strip_accents: expected true, false or null") }
                strip = b
            }
            normalizer = BertNormalizer(cleanText: try bool(n, "clean_text", "normalizer", default: true),
                                        handleChineseChars: try bool(n, "handle_chinese_chars", "normalizer", default: true),
                                        stripAccents: strip, lowercase: try bool(n, "lowercase", "normalizer", default: true))
        }
        var preTokenizer: BertPreTokenizer?
        if let p = try object(root["pre_tokenizer"], "pre_tokenizer") {
            _ = try type(p, "pre_tokenizer", supported: ["BertPreTokenizer"])
            preTokenizer = BertPreTokenizer()
        }

        // Added tokens.
        var added: [AddedToken] = []
        if let list = root["added_tokens"], list != .null {
            guard let items = list.arrayValue else { throw TokenizerError("added_tokens: expected a list") }
            for (i, item) in items.enumerated() {
                let path = "added_tokens[\(i)]"
                guard let o = item.objectValue else { throw TokenizerError("\(path): expected an object") }
                for key in ["single_word", "lstrip", "rstrip"] where try bool(o, key, path, default: false) {
                    throw TokenizerError("\(path).\(key) = true is not supported")
                }
                added.append(AddedToken(id: try int(o, "id", path), content: try string(o, "content", path),
                                        special: try bool(o, "special", path, default: false),
                                        normalized: try bool(o, "normalized", path, default: true)))
            }
        }

        // Post-processor.
        var post: TemplateProcessing?
        if let p = try object(root["post_processor"], "post_processor") {
            switch try type(p, "post_processor", supported: ["TemplateProcessing", "BertProcessing"]) {
            case "BertProcessing":
                func pair(_ key: String) throws -> (String, Int) {
                    guard let a = p[key]?.arrayValue, a.count == 2, let s = a[0].stringValue, let id = a[1].intValue else {
                        throw TokenizerError("post_processor.\(key): expected [token, id]")
                    }
                    return (s, id)
                }
                post = try .bert(cls: try pair("cls"), sep: try pair("sep"))
            default:
                func pieces(_ key: String) throws -> [TemplateProcessing.Piece] {
                    guard let items = p[key]?.arrayValue else { throw TokenizerError("post_processor.\(key): expected a list") }
                    return try items.enumerated().map { i, item in
                        let path = "post_processor.\(key)[\(i)]"
                        if let s = try object(item.objectValue?["SpecialToken"], path) {
                            return .special(try string(s, "id", path), typeID: try int(s, "type_id", path, default: 0))
                        }
                        if let s = try object(item.objectValue?["Sequence"], path) {
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
                    guard let o = v.objectValue, let ids = o["ids"]?.arrayValue?.compactMap(\.intValue),
                          let tokens = o["tokens"]?.arrayValue?.compactMap(\.stringValue) else {
                        throw TokenizerError("\(path): expected {\"ids\": [...], \"tokens\": [...]}")
                    }
                    specials[name] = (ids, tokens)
                }
                post = try TemplateProcessing(single: try pieces("single"), pair: try pieces("pair"), specialTokens: specials)
            }
        }

        // Decoder.
        var decoder: WordPieceDecoder?
        if let d = try object(root["decoder"], "decoder") {
            _ = try type(d, "decoder", supported: ["WordPiece"])
            decoder = WordPieceDecoder(prefix: try string(d, "prefix", "decoder", default: "##"),
                                       cleanup: try bool(d, "cleanup", "decoder", default: true))
        }

        // Truncation and padding.
        var truncation: Truncation?
        if let t = try object(root["truncation"], "truncation") {
            let name = try string(t, "strategy", "truncation", default: "LongestFirst")
            guard let strategy = Truncation.Strategy(rawValue: name) else { throw TokenizerError("truncation.strategy \"\(name)\" is not supported") }
            truncation = Truncation(maxLength: try int(t, "max_length", "truncation"), strategy: strategy,
                                    fromLeft: try string(t, "direction", "truncation", default: "Right") == "Left")
        }
        var padding: Padding?
        if let p = try object(root["padding"], "padding") {
            var length: Int?
            if let fixed = p["strategy"]?.objectValue?["Fixed"] {
                guard let n = fixed.intValue, n >= 0 else { throw TokenizerError("padding.strategy.Fixed: expected a length") }
                length = n
            } else if p["strategy"]?.stringValue != "BatchLongest" {
                throw TokenizerError("padding.strategy: expected \"BatchLongest\" or {\"Fixed\": n}")
            }
            let multiple = p["pad_to_multiple_of"].flatMap(\.intValue)
            padding = Padding(length: length, multipleOf: multiple,
                              left: try string(p, "direction", "padding", default: "Right") == "Left",
                              id: try int(p, "pad_id", "padding", default: 0), typeID: try int(p, "pad_type_id", "padding", default: 0),
                              token: try string(p, "pad_token", "padding", default: "[PAD]"))
        }
        self.init(normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: post, decoder: decoder,
                  addedTokens: added, truncation: truncation, padding: padding)
    }
}
