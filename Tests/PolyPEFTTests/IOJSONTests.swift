import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class IOJSONTests: XCTestCase {
    private func parseError(_ text: String) -> String? {
        do { _ = try JSONValue(parsing: text); XCTFail("\(text) parsed"); return nil } catch let e as JSONError {
            return e.description
        } catch { XCTFail("\(error)"); return nil }
    }

    func testParsesValuesKeepingIntsAndFloatsApart() throws {
        let v = try JSONValue(parsing: #" {"a": [1, -2, 1.0, 1e-06, -0.5E+2], "b": {"c": null, "d": true, "e": false}, "s": "x\u00e9\ud83d\ude00\n\"/"} "#)
        XCTAssertEqual(v["a"], [1, -2, 1.0, 1e-06, -50.0])
        XCTAssertEqual(v["a"]?.arrayValue?[0], .int(1))
        XCTAssertEqual(v["a"]?.arrayValue?[2], .double(1))
        XCTAssertEqual(v["b"], ["c": nil, "d": true, "e": false])
        XCTAssertEqual(v["s"]?.stringValue, "xé😀\n\"/")
        XCTAssertEqual(try JSONValue(parsing: "9223372036854775807"), .int(Int.max))
        XCTAssertEqual(try JSONValue(parsing: "9223372036854775808"), .double(9223372036854775808))
    }

    func testRejectsWhatStrictJSONForbidsWithExactMessages() {
        XCTAssertEqual(parseError(#"{"a": 1, "a": 2}"#), #"duplicate key "a" at byte 9"#)
        XCTAssertEqual(parseError(#"{"x": {"b": 1, "b": 1}}"#), #"duplicate key "b" at byte 15"#)
        XCTAssertEqual(parseError("[1, 2,]"), "expected a value but found ']' at byte 6")
        XCTAssertEqual(parseError("{\"a\": 1,}"), "expected a string key but found '}' at byte 8")
        XCTAssertEqual(parseError("012"), "leading zero in number at byte 0")
        XCTAssertEqual(parseError("1."), "expected digits after '.' in number at byte 2")
        XCTAssertEqual(parseError("NaN"), "expected a value but found 'N' at byte 0")
        XCTAssertEqual(parseError("{} x"), "unexpected text after the JSON value at byte 3")
        XCTAssertEqual(parseError("\"a\u{01}\""), "raw control character 0x1 in string at byte 2")
        XCTAssertEqual(parseError(#""\ud800""#), #"lone surrogate \ud800 in string at byte 7"#)
        XCTAssertEqual(parseError(#""\x""#), #"invalid escape '\x' in string at byte 2"#)
        XCTAssertEqual(parseError("// c\n{}"), "expected a value but found '/' at byte 0")
        XCTAssertEqual(parseError(""), "expected a value but found end of input at byte 0")
        XCTAssertEqual(parseError("1e999"), "number 1e999 is out of range at byte 0")
        XCTAssertEqual(parseError(String(repeating: "[", count: 300)), "nesting deeper than 256 at byte 256")
        XCTAssertThrowsError(try JSONValue(parsing: Data([0x22, 0xC3, 0x28, 0x22]))) { e in
            XCTAssertEqual((e as? JSONError)?.description, "input is not valid UTF-8 at byte 1")
        }
    }

    func testNonFiniteNumbersOnlyWhenAllowed() throws {
        XCTAssertEqual(parseError("Infinity"), "expected a value but found 'I' at byte 0")
        let v = try JSONValue(parsing: "[NaN, Infinity, -Infinity, -1]", allowNonFinite: true)
        let items = try XCTUnwrap(v.arrayValue)
        XCTAssertTrue(items[0].doubleValue!.isNaN)
        XCTAssertEqual(Array(items[1...]), [.double(.infinity), .double(-.infinity), .int(-1)])
        XCTAssertEqual(v.pythonStyleString(indent: nil), "[NaN, Infinity, -Infinity, -1]")
        XCTAssertThrowsError(try JSONValue(parsing: "-Inf", allowNonFinite: true))
    }

    /// Mutated JSON texts either throw `JSONError` or parse to a value that both writers round-trip exactly.
    func testMutatedJSONParsesOrThrowsAndRoundTrips() throws {
        var texts: [[UInt8]] = []
        for name in IOTestSupport.goldenCases() {
            texts.append([UInt8](try Data(contentsOf: IOTestSupport.goldenRoot.appendingPathComponent("\(name)/adapter/adapter_config.json"))))
        }
        texts.append(Array(#"{"a": [1, -2.5e-3, "\u00e9\ud83d\ude00", {"b": [[], {}]}], "c": null}"#.utf8))
        let alphabet = Array(#"{}[]",:-+.0123456789eE\u truefalsnl"#.utf8) + [0xC3, 0xA9, 0x80, 0xFF]
        var rng = Xoshiro256(seed: 77)
        var parsed = 0
        for _ in 0..<5000 {
            var t = texts[Int(rng.next() % UInt64(texts.count))]
            for _ in 0..<(1 + Int(rng.next() % 3)) where !t.isEmpty {
                let at = Int(rng.next() % UInt64(t.count))
                switch rng.next() % 3 {
                case 0: t[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: t.remove(at: at)
                default: t.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                }
            }
            do {
                let v = try JSONParser.parse(bytes: t)
                parsed += 1
                XCTAssertEqual(try JSONValue(parsing: v.pythonStyleString(indent: 2)), v)
                XCTAssertEqual(try JSONValue(parsing: v.pythonStyleString(indent: nil)), v)
                XCTAssertEqual(try JSONValue(parsing: v.compactString()), v)
            } catch is JSONError {
            } catch { XCTFail("unexpected error \(error)") }
        }
        XCTAssertGreaterThan(parsed, 100)
        XCTAssertLessThan(parsed, 4000)
    }

    func testUTF8ValidatorMatchesTheStandardLibrary() {
        var rng = Xoshiro256(seed: 11)
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xA0, 0xED, 0x9F, 0xF0, 0x90, 0xF4, 0x8F, 0xF5, 0xFF]
        for _ in 0..<5000 {
            let bytes = (0..<Int(rng.next() % 7)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            let valid = String(validating: bytes, as: UTF8.self) != nil
            XCTAssertEqual(JSONParser.firstInvalidUTF8(bytes) == nil, valid, "\(bytes)")
        }
    }

    func testPythonReprOfFloats() {
        let cases: [(Double, String)] = [
            (1, "1.0"), (0, "0.0"), (-0.0, "-0.0"), (0.1, "0.1"), (1e-06, "1e-06"), (0.0001, "0.0001"), (1e-05, "1e-05"),
            (123.456, "123.456"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1.5e16, "1.5e+16"),
            (2.5e-10, "2.5e-10"), (-3.25, "-3.25"), (Double.leastNonzeroMagnitude, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"), (12345678901234567890.0, "1.2345678901234567e+19"),
            (.infinity, "Infinity"), (-.infinity, "-Infinity"), (.nan, "NaN"), (100, "100.0"), (0.001, "0.001"),
        ]
        for (value, expected) in cases { XCTAssertEqual(JSONValue.pythonRepr(value), expected, "\(value)") }
    }

    func testPythonStyleLayoutAndEscapes() {
        let v: JSONValue = ["b": [1, 2.5, [], [:]], "a": "é😀\u{7F}\"\\\n", "c": ["z": nil, "y": true]]
        XCTAssertEqual(v.pythonStyleString(indent: 2), """
        {
          "a": "\\u00e9\\ud83d\\ude00\\u007f\\"\\\\\\n",
          "b": [
            1,
            2.5,
            [],
            {}
          ],
          "c": {
            "y": true,
            "z": null
          }
        }
        """)
        XCTAssertEqual(v.pythonStyleString(indent: nil), #"{"a": "\u00e9\ud83d\ude00\u007f\"\\\n", "b": [1, 2.5, [], {}], "c": {"y": true, "z": null}}"#)
        XCTAssertEqual(v.compactString(), "{\"a\":\"é😀\u{7F}\\\"\\\\\\n\",\"b\":[1,2.5,[],{}],\"c\":{\"y\":true,\"z\":null}}")
        XCTAssertEqual(JSONValue.array([]).pythonStyleString(), "[]")
    }

    /// PEFT writes `adapter_config.json` with `json.dumps(indent=2, sort_keys=True)` (no trailing newline) and
    /// transformers writes `config.json` the same way plus "\n": re-serialising must give the same bytes.
    func testGoldenConfigsReserialiseByteForByte() throws {
        var checked = 0
        for name in IOTestSupport.goldenCases() {
            let folder = IOTestSupport.goldenRoot.appendingPathComponent(name)
            for (file, suffix) in [("adapter/adapter_config.json", ""), ("base_config.json", "\n")] {
                let url = folder.appendingPathComponent(file)
                guard let bytes = try? Data(contentsOf: url) else { continue }
                let value = try JSONValue(parsing: bytes)
                XCTAssertEqual(Data((value.pythonStyleString(indent: 2) + suffix).utf8), bytes, url.path)
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 6)
    }
}
