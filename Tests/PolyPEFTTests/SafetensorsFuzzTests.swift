import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Deterministic mutation fuzzing of the safetensors reader: every mutated buffer must either parse (and then every
/// tensor must decode to the advertised size) or throw a `FileFormatError`. A crash or trap fails the whole run.
final class SafetensorsFuzzTests: XCTestCase {
    #if DEBUG
    static let iterations = 1_000  // unoptimised builds are ~60x slower; the release run is the real fuzz
    #else
    static let iterations = 20_000  // about 1 s in release
    #endif

    private func seeds() throws -> [Data] {
        var rng = Xoshiro256(seed: 1)
        var seeds: [Data] = []
        seeds.append(try Safetensors.encode(["w": Tensor.normal([2, 3], using: &rng)], metadata: ["format": "pt"]))
        seeds.append(try Safetensors.encode(entries: [
            "a": .float(Tensor.normal([3], using: &rng), as: .F16), "b": .float(Tensor.normal([2, 2], using: &rng), as: .BF16),
            "c": .float(Tensor.normal([1, 2], using: &rng), as: .F64), "ids": .int([0, 1, 2], shape: [3]),
            "m": .int([1, 0], shape: [2], as: .BOOL), "q": .int([-3], shape: [], as: .I8), "e": .float(Tensor([], shape: [0])),
        ]))
        seeds.append(try Safetensors.encode([:]))
        for url in IOTestSupport.goldenSafetensors() { seeds.append(try Data(contentsOf: url)) }
        return seeds
    }

    /// A random header built from valid and invalid pieces, with a data section of a plausible or random size.
    private func randomHeaderFile(_ rng: inout Xoshiro256) -> Data {
        let dtypes = ["F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "", "f32"]
        let extents = ["0", "1", "2", "3", "-1", "1.5", "4294967296", "9223372036854775807", "\"2\"", "null"]
        var parts: [String] = []
        var offset = 0
        for t in 0..<Int(rng.next() % 4) {
            let dtype = dtypes[Int(rng.next() % UInt64(dtypes.count))]
            let rank = Int(rng.next() % 4)
            let dims = (0..<rank).map { _ in rng.next() % 4 == 0 ? extents[Int(rng.next() % UInt64(extents.count))] : String(rng.next() % 3 + 1) }
            let count = dims.reduce(1) { $0 &* (Int($1) ?? 1) }
            let size = count &* (SafetensorsDType(rawValue: dtype)?.byteSize ?? 4)
            let begin = rng.next() % 5 == 0 ? Int(rng.next() % 64) : offset
            let end = rng.next() % 5 == 0 ? Int(rng.next() % 64) : begin + max(0, min(size, 1 << 20))
            offset = end
            var fields = [#""dtype":"\#(dtype)""#, #""shape":[\#(dims.joined(separator: ","))]"#, #""data_offsets":[\#(begin),\#(end)]"#]
            if rng.next() % 8 == 0 { fields.remove(at: Int(rng.next() % 3)) }
            if rng.next() % 8 == 0 { fields.append(#""x":1"#) }
            parts.append(#""t\#(rng.next() % 8 == 0 ? 0 : t)":{\#(fields.joined(separator: ","))}"#)
        }
        if rng.next() % 3 == 0 { parts.append(rng.next() % 2 == 0 ? #""__metadata__":{"format":"pt"}"# : #""__metadata__":{"n":1}"#) }
        let dataCount = rng.next() % 4 == 0 ? Int(rng.next() % 128) : max(0, min(offset, 1 << 20))
        return IOTestSupport.rawFile(header: "{" + parts.joined(separator: ",") + "}", data: (0..<dataCount).map { UInt8(truncatingIfNeeded: $0) })
    }

    private func mutate(_ input: Data, seeds: [Data], rng: inout Xoshiro256) -> Data {
        var d = [UInt8](input)
        let headerEnd = d.count >= 8 ? min(d.count, 8 + Int(d.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } & 0xFFFFF)) : d.count
        func pick(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
        switch rng.next() % 9 {
        case 0, 1:  // bit flips in the header
            for _ in 0..<(1 + pick(4)) where headerEnd > 0 { d[pick(headerEnd)] ^= UInt8(1) << UInt8(pick(8)) }
        case 2:  // bit flips anywhere
            for _ in 0..<(1 + pick(8)) where !d.isEmpty { d[pick(d.count)] ^= UInt8(1) << UInt8(pick(8)) }
        case 3:  // truncation
            d.removeLast(pick(d.count + 1))
        case 4:  // splice: a prefix of this file and a suffix of another
            let other = [UInt8](seeds[pick(seeds.count)])
            d = Array(d.prefix(pick(d.count + 1))) + Array(other.suffix(pick(other.count + 1)))
        case 5:  // random header length (small, near the real one, or huge)
            if d.count >= 8 {
                let real = UInt64(headerEnd - 8)
                let choices: [UInt64] = [rng.next() % 256, real &+ rng.next() % 17 &- 8, rng.next(), 100_000_000, UInt64(d.count)]
                let v = choices[pick(choices.count)].littleEndian
                withUnsafeBytes(of: v) { for i in 0..<8 { d[i] = $0[i] } }
            }
        case 6:  // overwrite header bytes with JSON-significant characters or digits
            let alphabet = Array(#"{}[]",:-0123456789.e "#.utf8)
            for _ in 0..<(1 + pick(4)) where headerEnd > 8 { d[8 + pick(headerEnd - 8)] = alphabet[pick(alphabet.count)] }
        case 7:  // insert or delete bytes inside the header
            if headerEnd > 8 {
                let at = 8 + pick(headerEnd - 8)
                if rng.next() % 2 == 0 { d.insert(UInt8(truncatingIfNeeded: rng.next()), at: at) } else { d.remove(at: at) }
            }
        default:  // a fresh random header
            return randomHeaderFile(&rng)
        }
        return Data(d)
    }

    /// Parses `data`; on success decodes every tensor and checks the sizes agree. Returns whether it parsed.
    private func check(_ data: Data) -> Bool {
        do {
            let file = try SafetensorsFile(data: data, name: "fuzz")
            for key in file.keys {
                let info = try file.info(key)
                XCTAssertEqual(info.elementCount, Tensor.checkedElementCount(info.shape))
                XCTAssertEqual(try file.rawBytes(key).count, info.elementCount * info.dtype.byteSize)
                if info.dtype.isFloatingPoint {
                    XCTAssertEqual(try file.tensor(key).count, info.elementCount)
                } else {
                    XCTAssertEqual(try file.intTensor(key).values.count, info.elementCount)
                }
            }
            return true
        } catch is FileFormatError {
            return false
        } catch {
            XCTFail("unexpected error type: \(error)")
            return false
        }
    }

    func testMutatedFilesParseOrThrow() throws {
        let seeds = try seeds()
        for s in seeds { XCTAssertTrue(check(s), "seed files must parse") }
        var rng = Xoshiro256(seed: 2026)
        var parsed = 0, rejected = 0
        for _ in 0..<Self.iterations {
            var d = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(rng.next() % 3)) { d = mutate(d, seeds: seeds, rng: &rng) }
            if check(d) { parsed += 1 } else { rejected += 1 }
        }
        print("safetensors fuzz: \(parsed) parsed, \(rejected) rejected of \(Self.iterations)")
        // Both outcomes must be exercised, or the fuzzer is not reaching the interesting paths.
        XCTAssertGreaterThan(parsed, Self.iterations / 50)
        XCTAssertGreaterThan(rejected, Self.iterations / 2)
    }
}
