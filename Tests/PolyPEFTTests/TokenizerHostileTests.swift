import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Hostile `tokenizer.json` files: seeded mutations of the four test tokenizers (values replaced by edge numbers,
/// other kinds or removed; the Precompiled charsmap's bytes damaged), each loaded and, when it loads, used to encode
/// and decode a few texts. A mutant must load and work, or throw; a trap fails the whole test run.
final class TokenizerHostileTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "tokenizers", withExtension: nil)!
    static let texts = ["Hello, wörld! 日本語 🤖", "", "   ", "[CLS] a [MASK]", String(repeating: "x", count: 300), "e\u{301}\u{0}\u{FFFD}"]

    /// Every path to a value in `v` (object keys and array indices), skipping big vocabularies' elements.
    func paths(_ v: JSONValue, _ prefix: [JSONPathItem] = []) -> [[JSONPathItem]] {
        switch v {
        case let .object(o): return [prefix] + o.keys.sorted().flatMap { paths(o[$0]!, prefix + [.key($0)]) }
        case let .array(a): return [prefix] + a.indices.prefix(6).flatMap { paths(a[$0], prefix + [.index($0)]) }
        default: return [prefix]
        }
    }

    enum JSONPathItem: Equatable { case key(String), index(Int) }

    func value(_ v: JSONValue, at path: [JSONPathItem]) -> JSONValue? {
        var v = v
        for item in path {
            switch (v, item) {
            case (.object(let o), .key(let k)): guard let c = o[k] else { return nil }; v = c
            case (.array(let a), .index(let i)) where i < a.count: v = a[i]
            default: return nil
            }
        }
        return v
    }

    func replacing(_ v: JSONValue, at path: ArraySlice<JSONPathItem>, with new: JSONValue?) -> JSONValue? {
        guard let first = path.first else { return new }
        switch (v, first) {
        case (.object(var o), .key(let k)):
            if path.count == 1 && new == nil { o[k] = nil } else if let child = o[k] { o[k] = replacing(child, at: path.dropFirst(), with: new) }
            return .object(o)
        case (.array(var a), .index(let i)) where i < a.count:
            if let r = replacing(a[i], at: path.dropFirst(), with: new) { a[i] = r } else { a.remove(at: i) }
            return .array(a)
        default: return v
        }
    }

    func testMutatedTokenizersLoadOrThrow() throws {
        var rng = Xoshiro256(seed: 20)
        let edge: [JSONValue] = [.int(-1), .int(0), .int(1 << 31), .int(Int.max), .int(Int.min), .double(1e300), .double(-0.5),
                                 .string(""), .string("▁▁"), .bool(true), .null, .array([]), .object([:]), .array([.int(1), .string("x")])]
        var loaded = 0, refused = 0
        for name in ["wordpiece_uncased", "unigram_t5", "unigram_bytes"] {
            let original = try JSONValue(parsing: try Data(contentsOf: Self.folder.appendingPathComponent(name + ".json")))
            let all = paths(original).filter { !$0.isEmpty }
            for _ in 0..<150 {
                var mutant = original
                for _ in 0..<Int.random(in: 0...2, using: &rng) {
                    let path = all[Int.random(in: 0..<all.count, using: &rng)]
                    let choice = Int.random(in: 0...(2 * edge.count), using: &rng)
                    let new: JSONValue?
                    if choice < edge.count { new = edge[choice] } else if choice == edge.count { new = nil } else {
                        // A value of the same kind, which a reader is more likely to accept.
                        switch value(original, at: path) {
                        case .int?: new = .int([0, 1, 2, 3, 7, 100, 100_000][Int.random(in: 0..<7, using: &rng)])
                        case .double?: new = .double([-1e30, -20, 0, 0.5, 1e30][Int.random(in: 0..<5, using: &rng)])
                        case .bool(let b)?: new = .bool(!b)
                        case .string?: new = .string(["", "x", "▁", "[UNK]", "<unk>", "##", "Left", "Right"][Int.random(in: 0..<8, using: &rng)])
                        default: new = edge[choice % edge.count]
                        }
                    }
                    mutant = replacing(mutant, at: path[...], with: new) ?? mutant
                }
                if case var .object(o) = mutant, case var .object(n)? = o["normalizer"], case var .array(list)? = n["normalizers"],
                   case var .object(pre)? = list.first, let b64 = pre["precompiled_charsmap"]?.stringValue,
                   var bytes = Data(base64Encoded: b64).map({ [UInt8]($0) }), !bytes.isEmpty, Int.random(in: 0..<3, using: &rng) == 0 {
                    // Damage the charsmap: header, trie units or replacement text.
                    for _ in 0..<Int.random(in: 1...20, using: &rng) {
                        let i = Int.random(in: 0..<bytes.count, using: &rng)
                        bytes[i] = UInt8.random(in: 0...255, using: &rng)
                    }
                    if Int.random(in: 0..<4, using: &rng) == 0 { bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng))) }
                    pre["precompiled_charsmap"] = .string(Data(bytes).base64EncodedString())
                    list[0] = .object(pre); n["normalizers"] = .array(list); o["normalizer"] = .object(n)
                    mutant = .object(o)
                }
                let tokenizer: Tokenizer
                do { tokenizer = try Tokenizer(json: mutant) } catch { refused += 1; continue }
                loaded += 1
                for text in Self.texts {
                    guard let e = try? tokenizer.encode(text, pair: text.isEmpty ? nil : "b c") else { continue }
                    _ = tokenizer.decode(e.ids)
                    _ = tokenizer.decode(e.ids, skipSpecialTokens: false)
                }
                _ = try? tokenizer.encodeBatch(Self.texts)
            }
        }
        XCTAssertGreaterThan(loaded, 50, "mutants that still load exercise encoding")
        XCTAssertGreaterThan(refused, 50, "mutants that are refused exercise the checks")
    }

    /// An empty Replace pattern (a mutant above made one): matched before every scalar and at the end, as Rust's
    /// `str::replace` does, instead of looping without end.
    func testEmptyReplacePattern() {
        XCTAssertEqual(ReplaceDecoder(pattern: "", content: "-").decodeChain(["abc", ""]), ["-a-b-c-", "-"])
        XCTAssertEqual(ReplaceNormalizer(string: "", content: "-").normalize(Array("ab".unicodeScalars)), Array("ab".unicodeScalars))
    }
}
