import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Every malformed file must give a `FileFormatError` with a message naming the problem, never a crash.
final class SafetensorsHostileTests: XCTestCase {
    private let fileName = "t.safetensors"

    /// The message for a buffer made of `header` (length field = its byte count unless given) and `data` bytes.
    private func message(_ header: String, data: Int = 0, headerLength: UInt64? = nil,
                         file: StaticString = #filePath, line: UInt = #line) -> String? {
        message(IOTestSupport.rawFile(header: header, data: [UInt8](repeating: 0, count: data), headerLength: headerLength),
                file: file, line: line)
    }

    private func message(_ buffer: Data, file: StaticString = #filePath, line: UInt = #line) -> String? {
        IOTestSupport.safetensorsMessage({ _ = try SafetensorsFile(data: buffer, name: fileName) }, file: file, line: line)
    }

    private func entry(_ dtype: String = "F32", _ shape: String = "[1]", _ offsets: String = "[0,4]") -> String {
        #"{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    func testFramingErrors() {
        XCTAssertEqual(message(Data([1, 2, 3])), "file is 3 bytes, too short for the 8-byte header length")
        XCTAssertEqual(message(Data()), "file is 0 bytes, too short for the 8-byte header length")
        XCTAssertEqual(message("{}", headerLength: 100), "header length 100 runs past the end of the file (10 bytes)")
        XCTAssertEqual(message("{}", headerLength: 100_000_001), "header length 100000001 exceeds the limit of 100000000 bytes")
        XCTAssertEqual(message("{}", headerLength: .max), "header length 18446744073709551615 exceeds the limit of 100000000 bytes")
        var notUTF8 = Data([3, 0, 0, 0, 0, 0, 0, 0])
        notUTF8.append(contentsOf: [0x7B, 0xFF, 0x7D])
        XCTAssertEqual(message(notUTF8), "header is not valid UTF-8 (byte 1 of the header)")
        XCTAssertEqual(message("{"), "header is not valid JSON: expected a string key but found end of input at byte 1")
        XCTAssertEqual(message("[]"), "header is not a JSON object (found array)")
        XCTAssertEqual(message(String(repeating: "[", count: 100_000)), "header is not valid JSON: nesting deeper than 256 at byte 256")
        // The full error names the file.
        XCTAssertThrowsError(try SafetensorsFile(data: Data([1]), name: fileName)) { e in
            XCTAssertEqual("\(e)", "t.safetensors: file is 1 bytes, too short for the 8-byte header length")
        }
    }

    func testEntryFieldErrors() {
        XCTAssertEqual(message(#"{"a":1}"#), #"tensor "a": entry is not an object (found integer)"#)
        XCTAssertEqual(message(#"{"a":{"dtype":"F32","shape":[1]}}"#, data: 4), #"tensor "a": missing field "data_offsets""#)
        XCTAssertEqual(message(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":0}}"#, data: 4),
                       #"tensor "a": unexpected field "extra""#)
        XCTAssertEqual(message(#"{"a":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, data: 4), #"tensor "a": dtype is not a string (found integer)"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F8_E4M3"))}"#, data: 4),
                       #"tensor "a": unsupported dtype "F8_E4M3" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "3"))}"#, data: 4), #"tensor "a": shape is not an array of integers (found integer)"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[2,-1]"))}"#, data: 4), #"tensor "a": shape entry -1 is not a non-negative integer"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1.0]"))}"#, data: 4), #"tensor "a": shape entry 1.0 is not a non-negative integer"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[\"1\"]"))}"#, data: 4), #"tensor "a": shape entry "1" is not a non-negative integer"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[99999999999999999999]"))}"#, data: 4),
                       #"tensor "a": shape entry 1e+20 is not a non-negative integer"#)
    }

    func testSizeAndOffsetErrors() {
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[4294967296,4294967296]"))}"#, data: 4),
                       #"tensor "a": shape [4294967296, 4294967296] has more elements than fit in memory"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[2305843009213693952]"))}"#, data: 4),
                       #"tensor "a": F32 shape [2305843009213693952] needs more bytes than fit in memory"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1]", "[0]"))}"#, data: 4),
                       #"tensor "a": data_offsets must be [begin, end] with two non-negative integers (found [0])"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1]", "[-4,0]"))}"#, data: 4),
                       #"tensor "a": data_offsets must be [begin, end] with two non-negative integers (found [-4,0])"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1]", "[8,4]"))}"#, data: 8), #"tensor "a": data_offsets [8, 4] begin is after end"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[2,2]", "[0,12]"))}"#, data: 12),
                       #"tensor "a": data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16"#)
        // Out of range, overlapping, gaps, not starting at 0, trailing bytes.
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[4]", "[0,16]"))}"#, data: 8), "tensors end at byte 16 but the data section holds 8 bytes")
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1]", "[0,4]"))}"#, data: 6), "tensors end at byte 4 but the data section holds 6 bytes")
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[2]", "[0,8]")),"b":\#(entry("F32", "[2]", "[4,12]"))}"#, data: 12),
                       #"tensor "b": data_offsets [4, 12] start at byte 4 but the previous tensor ends at byte 8 (tensors must tile the data section without gaps or overlaps)"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1]", "[0,4]")),"b":\#(entry("F32", "[1]", "[8,12]"))}"#, data: 12),
                       #"tensor "b": data_offsets [8, 12] start at byte 8 but the previous tensor ends at byte 4 (tensors must tile the data section without gaps or overlaps)"#)
        XCTAssertEqual(message(#"{"a":\#(entry("F32", "[1]", "[4,8]"))}"#, data: 8),
                       #"tensor "a": data_offsets [4, 8] start at byte 4 but the data section starts at byte 0 (tensors must tile the data section without gaps or overlaps)"#)
        // Two tensors sharing the same bytes (aliasing) are an overlap too.
        XCTAssertNotNil(message(#"{"a":\#(entry()),"b":\#(entry())}"#, data: 4))
    }

    func testDuplicateKeysAndMetadata() {
        let dup = #"{"a":\#(entry()),"a":\#(entry())}"#
        XCTAssertEqual(message(dup, data: 4), #"header is not valid JSON: duplicate key "a" at byte \#(6 + entry().utf8.count)"#)
        XCTAssertEqual(message(#"{"__metadata__":{"k":1}}"#), #"__metadata__ value for "k" is not a string (found integer)"#)
        XCTAssertEqual(message(#"{"__metadata__":["pt"]}"#), "__metadata__ is not an object of strings (found array)")
        XCTAssertEqual(message(#"{"__metadata__":{"k":"v","k":"w"}}"#), #"header is not valid JSON: duplicate key "k" at byte 25"#)
        // Valid edge cases are accepted: empty header, zero-size tensors, scalars, unpadded header.
        XCTAssertNoThrow(try SafetensorsFile(data: IOTestSupport.rawFile(header: "{}")))
        XCTAssertEqual(try SafetensorsFile(data: IOTestSupport.rawFile(header: #"{"__metadata__":null}"#)).metadata, [:])
        XCTAssertNoThrow(try SafetensorsFile(data: IOTestSupport.rawFile(
            header: #"{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}"#,
            data: [1, 0, 0, 0])))
    }
}
