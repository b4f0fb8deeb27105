import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The WordPiece tokenizers against the `tokenizers` library: ids, type ids, special-token masks and decoded text on
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
}
