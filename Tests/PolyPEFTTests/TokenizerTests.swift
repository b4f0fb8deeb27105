import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The tokenizers (two WordPiece, BERT-style; two Unigram, T5-style, one with byte fallback) against the `tokenizers`
/// library: ids, type ids, special-token masks and decoded text on
/// every line of a 2,400-line multilingual corpus (accents, CJK, emoji, odd whitespace, controls, long words,
/// punctuation, special tokens in the text), plus pairs, truncation and batch padding
/// (`Benchmarks/golden/make_tokenizer_cases.py` wrote the expected values).
final class TokenizerTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "tokenizers", withExtension: nil)!

    func lines(_ name: String) throws -> [[String: JSONValue]] {
        let text = try String(contentsOf: Self.folder.appendingPathComponent(name), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONValue(parsing: String($0)).objectValue! }
    }

    func ints(_ v: JSONValue?) -> [Int] { v?.arrayValue?.compactMap(\.intValue) ?? [] }

    func testCorpusIdsMatchTheTokenizersLibrary() throws {
        let corpus = try lines("corpus.jsonl").map { $0["text"]!.stringValue! }
        XCTAssertEqual(corpus.count, 2400)
        var tokenizers: [String: Tokenizer] = [:]
        for name in ["wordpiece_uncased", "wordpiece_cased", "unigram_t5", "unigram_bytes"] {
            var t = try Tokenizer(contentsOf: Self.folder.appendingPathComponent(name + ".json"))
            t.padding = nil
            t.truncation = nil
            tokenizers[name] = t
        }
        var checked = 0, differences: [String] = []
        for record in try lines("expected.jsonl") {
            var t = tokenizers[record["tokenizer"]!.stringValue!]!
            let what = "\(record["tokenizer"]!.stringValue!) line \(record["line"]?.intValue ?? -1)"
            if let batch = record["batch"]?.arrayValue?.compactMap(\.intValue) {
                t.padding = Tokenizer.Padding(multipleOf: record["pad_to_multiple_of"]!.intValue!)
                let encoded = try t.encodeBatch(batch.map { corpus[$0] })
                let ids = record["ids"]!.arrayValue!.map(ints), mask = record["attention_mask"]!.arrayValue!.map(ints)
                if encoded.map(\.ids) != ids || encoded.map(\.attentionMask) != mask { differences.append("batch padding") }
                checked += 1
                continue
            }
            let line = record["line"]!.intValue!
            let pair = record["pair"]?.intValue.map { corpus[$0] }
            if let maxLength = record["max_length"]?.intValue {
                let strategy: Tokenizer.Truncation.Strategy = record["strategy"]?.stringValue == "only_second" ? .onlySecond : .longestFirst
                t.truncation = Tokenizer.Truncation(maxLength: maxLength, strategy: strategy)
            }
            if record["error"] != nil {
                XCTAssertThrowsError(try t.encode(corpus[line], pair: pair), what)
                checked += 1
                continue
            }
            let e = try t.encode(corpus[line], pair: pair)
            let expected = (ints(record["ids"]), ints(record["type_ids"]), ints(record["special"]))
            if e.ids != expected.0 || e.typeIDs != expected.1 || e.specialTokensMask != expected.2 {
                differences.append("\(what)\(pair == nil ? "" : " (pair)"): \(e.tokens) vs ids \(expected.0)")
            } else if let decoded = record["decoded"]?.stringValue, t.decode(e.ids) != decoded {
                differences.append("\(what) decoded: \(t.decode(e.ids).debugDescription) vs \(decoded.debugDescription)")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 10000)
        XCTAssertEqual(differences.count, 0, "first differences:\n" + differences.prefix(10).joined(separator: "\n"))
    }

    func testSpecialTokensAndErrors() throws {
        var t = try Tokenizer(contentsOf: Self.folder.appendingPathComponent("wordpiece_uncased.json"))
        let e = try t.encode("[MASK] the [CLS]")
        XCTAssertEqual(e.tokens, ["[CLS]", "[MASK]", "the", "[CLS]", "[SEP]"])
        XCTAssertEqual(e.specialTokensMask, [1, 0, 0, 0, 1])
        XCTAssertEqual(t.decode(e.ids), "the")
        XCTAssertEqual(t.decode(e.ids, skipSpecialTokens: false), "[CLS] [MASK] the [CLS] [SEP]")
        t.truncation = Tokenizer.Truncation(maxLength: 1)
        XCTAssertThrowsError(try t.encode("the")) { XCTAssertEqual("\($0)", "truncation max_length 1 is shorter than the 2 special tokens the template adds") }
        let json = try JSONValue(parsing: try Data(contentsOf: Self.folder.appendingPathComponent("wordpiece_uncased.json")))
        var o = json.objectValue!
        o["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": false]
        XCTAssertThrowsError(try Tokenizer(json: .object(o))) {
            XCTAssertEqual("\($0)", "pre_tokenizer type \"ByteLevel\" is not supported (supported: BertPreTokenizer, WhitespaceSplit, Metaspace, Sequence)")
        }
        XCTAssertThrowsError(try Tokenizer(contentsOf: URL(fileURLWithPath: "/nonexistent/tokenizer.json"))) {
            XCTAssertEqual("\($0)", "/nonexistent/tokenizer.json: no such file")
        }
    }

    /// Cases the review found, each with the library's answer (tokenizers 0.23.3).
    func testLibraryEdgeCases() throws {
        // An added token with `normalized` true is matched by its normalized content.
        var json = try JSONValue(parsing: try Data(contentsOf: Self.folder.appendingPathComponent("wordpiece_uncased.json"))).objectValue!
        json["added_tokens"] = .array(json["added_tokens"]!.arrayValue! + [["id": 3000, "content": "HelloWorld", "single_word": false,
                                                                           "lstrip": false, "rstrip": false, "normalized": true, "special": false]])
        var t = try Tokenizer(json: .object(json))
        t.padding = nil
        t.truncation = nil
        XCTAssertEqual(try t.encode("x HELLOWORLD y").ids, [2, 66, 3000, 67, 3])
        XCTAssertEqual(try t.encode("Ünïcode HelloWorld!").ids, [2, 63, 1401, 1244, 547, 3000, 5, 3])
        // A pair without special tokens keeps the template's type ids (T5: all 0).
        let t5 = try Tokenizer(contentsOf: Self.folder.appendingPathComponent("unigram_t5.json"))
        let pair = try t5.encode("hello world", pair: "good day", addSpecialTokens: false)
        XCTAssertEqual(pair.ids, [3, 1004, 606, 36, 3, 598, 126, 736, 3, 665, 535, 3, 651, 10])
        XCTAssertEqual(pair.typeIDs, [Int](repeating: 0, count: 14))
        // No room left for text: both sequences emptied, whatever the strategy.
        t.truncation = Tokenizer.Truncation(maxLength: 3, strategy: .onlyFirst)
        XCTAssertEqual(try t.encode("hello world", pair: "good").ids, [2, 3, 3])
        // Padding sizes from a file are bounded before anything is allocated.
        for padding: JSONValue in [["strategy": ["Fixed": 1_099_511_627_776]], ["strategy": ["Fixed": 10], "pad_to_multiple_of": -2],
                                   ["strategy": "BatchLongest", "pad_to_multiple_of": 2_000_000]] {
            var o = json
            o["padding"] = padding
            XCTAssertThrowsError(try Tokenizer(json: .object(o)), "\(padding)")
        }
        var huge = t
        huge.padding = Tokenizer.Padding(length: Int.max - 1, multipleOf: 8)
        XCTAssertThrowsError(try huge.encode("x")) { XCTAssertTrue("\($0)".hasPrefix("padding to "), "\($0)") }
        // Metaspace options that contradict each other.
        var t5json = try JSONValue(parsing: try Data(contentsOf: Self.folder.appendingPathComponent("unigram_t5.json"))).objectValue!
        t5json["pre_tokenizer"] = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "add_prefix_space": false]
        XCTAssertThrowsError(try Tokenizer(json: .object(t5json))) {
            XCTAssertEqual("\($0)", "pre_tokenizer: add_prefix_space false contradicts prepend_scheme \"always\"")
        }
        // A vocabulary inside an array is not a vocabulary.
        let odd = #"{"model": {"type": "WordPiece", "vocab": [{"[UNK]": 0, "a": 1}]}}"#
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("odd-\(UUID().uuidString).json")
        try odd.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try Tokenizer(contentsOf: url)) { XCTAssertTrue("\($0)".hasSuffix("model.vocab: expected an object of token -> id"), "\($0)") }
    }
}
