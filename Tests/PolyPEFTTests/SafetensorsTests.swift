import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class SafetensorsTests: XCTestCase {
    private var golden: URL { IOTestSupport.goldenRoot }

    func testReadsGoldenInputsOutputsAndAdapter() throws {
        let inputs = try SafetensorsFile(contentsOf: golden.appendingPathComponent("poly_k4_s1_r2/inputs.safetensors"))
        XCTAssertEqual(inputs.keys, ["task_ids", "x"])
        XCTAssertEqual(try inputs.info("x").dtype, .F32)
        XCTAssertEqual(try inputs.info("task_ids").dtype, .I64)
        let x = try inputs.tensor("x")
        XCTAssertEqual(x.shape, [4, 3, 16])
        XCTAssertEqual(Array(x.scalars.prefix(3)), [-0.6027625203132629, -0.12083420902490616, -0.4322635531425476])
        XCTAssertEqual(x.scalars.last, -0.763175904750824)
        let ids = try inputs.intTensor("task_ids")
        XCTAssertEqual(ids.values, [2, 0, 1, 2])
        XCTAssertEqual(ids.shape, [4])
        XCTAssertEqual(try inputs.tensor("task_ids", convertingIntegers: true).scalars, [2, 0, 1, 2])

        let outputs = try SafetensorsFile(contentsOf: golden.appendingPathComponent("poly_k4_s1_r2/outputs.safetensors"))
        XCTAssertEqual(try outputs.info("peft_output_f64").dtype, .F64)
        let f64 = try outputs.tensor("peft_output_f64")
        XCTAssertEqual(f64.shape, [4, 3, 8])
        XCTAssertEqual(Array(f64.scalars.prefix(2)), [Float(0.5421562688549614), Float(-0.09424916941829008)])
        XCTAssertEqual(Array(try outputs.tensor("peft_output").scalars.prefix(2)), [0.5421562790870667, -0.0942491739988327])

        let adapter = try SafetensorsFile(contentsOf: golden.appendingPathComponent("poly_k4_s1_r2/adapter/adapter_model.safetensors"))
        XCTAssertEqual(adapter.metadata, ["format": "pt"])
        XCTAssertEqual(adapter.keys.count, 6)
        let logits = try adapter.tensor("base_model.model.fc1.poly_router.module_logits")
        XCTAssertEqual(logits.shape, [3, 4])
        XCTAssertEqual(Array(logits.scalars.prefix(3)), [2.2947921752929688, -0.28333017230033875, 0.9485064744949341])

        let t5 = try SafetensorsFile(contentsOf: golden.appendingPathComponent("t5_mhr_k4_s2_r2/inputs.safetensors"))
        XCTAssertEqual(try t5.intTensor("input_ids").values, [23, 9, 21, 18, 3, 29, 25, 17, 0, 0])
        XCTAssertEqual(try t5.intTensor("input_ids").shape, [2, 5])
    }

    func testWrongKindRequestsAreNamedErrors() throws {
        let inputs = try SafetensorsFile(contentsOf: golden.appendingPathComponent("poly_k4_s1_r2/inputs.safetensors"))
        let path = inputs.name
        XCTAssertEqual(IOTestSupport.safetensorsMessage { _ = try inputs.tensor("task_ids") },
                       "tensor \"task_ids\" is I64, an integer dtype: use intTensor(_:) or pass convertingIntegers: true")
        XCTAssertEqual(IOTestSupport.safetensorsMessage { _ = try inputs.intTensor("x") },
                       "tensor \"x\" is F32, not an integer dtype: use tensor(_:)")
        XCTAssertThrowsError(try inputs.tensor("y")) { e in
            XCTAssertEqual("\(e)", "\(path): no tensor named \"y\" (the file has 2 tensors)")
        }
        XCTAssertThrowsError(try inputs.allTensors())
        XCTAssertEqual(try inputs.allTensors(convertingIntegers: true).count, 2)
        let missing = "/nonexistent/dir/w.safetensors"
        XCTAssertThrowsError(try SafetensorsFile(contentsOf: URL(fileURLWithPath: missing))) { e in
            XCTAssertEqual("\(e)", "\(missing): no such file")
        }
    }

    /// Re-encoding every golden file entry by entry (keeping dtypes and metadata) must reproduce it byte for byte:
    /// same key order (dtype alignment, then name), same compact header, same padding.
    func testGoldenFilesReencodeByteForByte() throws {
        let files = IOTestSupport.goldenSafetensors()
        XCTAssertGreaterThanOrEqual(files.count, 25)
        for url in files {
            let file = try SafetensorsFile(contentsOf: url)
            var entries: [String: SafetensorsEntry] = [:]
            for key in file.keys { entries[key] = try file.entry(key) }
            let bytes = try Safetensors.encode(entries: entries, metadata: file.metadata.isEmpty ? nil : file.metadata)
            XCTAssertEqual(bytes, try Data(contentsOf: url), url.lastPathComponent)
        }
    }

    func testReferenceSerialisationExamples() throws {
        // The reference library's own test vectors: {"attn.0": F32 [1, 2, 3] of 0...5} and the empty file.
        let t = Tensor([0, 1, 2, 3, 4, 5], shape: [1, 2, 3])
        let out = try Safetensors.encode(["attn.0": t])
        XCTAssertEqual([UInt8](out.prefix(8)), [64, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(String(decoding: out[8..<72], as: UTF8.self),
                       #"{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"#)  // 64 bytes: no padding needed
        XCTAssertEqual(out.count, 8 + 64 + 24)
        XCTAssertEqual([UInt8](try Safetensors.encode([:])), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
        let withMeta = try Safetensors.encode([:], metadata: ["framework": "pt"])
        XCTAssertEqual(String(decoding: withMeta.dropFirst(8), as: UTF8.self), #"{"__metadata__":{"framework":"pt"}}     "#)
    }

    func testRoundTripAllDtypes() throws {
        var rng = Xoshiro256(seed: 3)
        let a = Tensor.normal([3, 5], using: &rng)
        let scalar = Tensor(scalar: -2.5)
        let empty = Tensor([], shape: [0, 4])
        let strided = Tensor.normal([4, 6], using: &rng).T  // non-contiguous view
        let entries: [String: SafetensorsEntry] = [
            "a32": try .float(a), "a64": try .float(a, as: .F64), "a16": try .float(a, as: .F16), "abf": try .float(a, as: .BF16),
            "scalar": try .float(scalar), "empty": try .float(empty), "strided": try .float(strided),
            "i64": try .int([Int.min, -1, 0, Int.max], shape: [2, 2]), "i32": try .int([Int(Int32.min), 7], shape: [2], as: .I32),
            "i16": try .int([-300, 300], shape: [2], as: .I16), "i8": try .int([-128, 127], shape: [1, 2], as: .I8),
            "u8": try .int([0, 255], shape: [2], as: .U8), "b": try .int([1, 0, 1], shape: [3], as: .BOOL),
        ]
        let meta = ["format": "pt", "note": "é \"q\""]
        let dir = IOTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("all.safetensors")
        try Safetensors.write(entries: entries, metadata: meta, to: url)
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.keys, entries.keys.sorted())
        XCTAssertEqual(file.metadata, meta)
        for key in file.keys { XCTAssertEqual(try file.entry(key), entries[key], key) }
        XCTAssertEqual(try file.tensor("a32"), a)
        XCTAssertEqual(try file.tensor("a64"), a)
        XCTAssertEqual(try file.tensor("scalar"), scalar)
        XCTAssertEqual(try file.tensor("empty"), empty)
        XCTAssertEqual(try file.tensor("strided"), strided)
        for (key, tol) in [("a16", Float(1e-3)), ("abf", Float(8e-3))] {
            let got = try file.tensor(key)
            XCTAssertEqual(got.shape, [3, 5])
            for (g, w) in zip(got.scalars, a.scalars) { XCTAssertLessThanOrEqual(abs(g - w), tol * max(1, abs(w)), key) }
        }
        XCTAssertEqual(try file.intTensor("i64").values, [Int.min, -1, 0, Int.max])
        XCTAssertEqual(try file.intTensor("i32").values, [Int(Int32.min), 7])
        XCTAssertEqual(try file.intTensor("i16").values, [-300, 300])
        XCTAssertEqual(try file.intTensor("i8").values, [-128, 127])
        XCTAssertEqual(try file.intTensor("u8").values, [0, 255])
        XCTAssertEqual(try file.intTensor("b").values, [1, 0, 1])
        XCTAssertEqual(try Safetensors.read(url, convertingIntegers: true)["u8"]?.scalars, [0, 255])
        // In-memory encode gives the same bytes as the file.
        XCTAssertEqual(try Safetensors.encode(entries: entries, metadata: meta), try Data(contentsOf: url))
    }

    func testEntryValidation() {
        XCTAssertThrowsError(try SafetensorsEntry.int([128], shape: [1], as: .I8)) { e in
            XCTAssertEqual("\(e)", "safetensors entry: value 128 does not fit in I8")
        }
        XCTAssertThrowsError(try SafetensorsEntry.int([1, 2], shape: [3]))
        XCTAssertThrowsError(try SafetensorsEntry.int([1], shape: [1], as: .F32))
        XCTAssertThrowsError(try SafetensorsEntry.float(Tensor(scalar: 1), as: .I64))
        XCTAssertThrowsError(try SafetensorsEntry(dtype: .F32, shape: [2], bytes: Data(count: 7))) { e in
            XCTAssertEqual("\(e)", "safetensors entry: 7 bytes do not hold F32 [2]")
        }
        XCTAssertThrowsError(try Safetensors.encode(["__metadata__": Tensor(scalar: 1)]))
    }

    /// F16/BF16 widening is exact: every one of the 65,536 bit patterns survives Float and back (NaN stays NaN).
    func testHalfAndBFloat16ConversionExhaustive() {
        for bits in 0...UInt16.max {
            let f = SafetensorsConversion.halfToFloat(bits)
            let b = SafetensorsConversion.bfloat16ToFloat(bits)
            #if !(os(macOS) && arch(x86_64))
            let ref = Float(Float16(bitPattern: bits))  // the standard library's conversion as oracle
            XCTAssertTrue(f.bitPattern == ref.bitPattern || (f.isNaN && ref.isNaN), "F16 \(bits)")
            #endif
            if f.isNaN { XCTAssertTrue(SafetensorsConversion.halfToFloat(SafetensorsConversion.floatToHalf(f)).isNaN) } else {
                XCTAssertEqual(SafetensorsConversion.floatToHalf(f), bits, "F16 \(bits)")
            }
            if b.isNaN { XCTAssertEqual(SafetensorsConversion.floatToBFloat16(b), 0x7FC0) } else {
                XCTAssertEqual(SafetensorsConversion.floatToBFloat16(b), bits, "BF16 \(bits)")
            }
        }
        // Spot values: subnormals, max, overflow, ties to even.
        XCTAssertEqual(SafetensorsConversion.halfToFloat(0x0001), Float(bitPattern: 0x3380_0000))  // 2^-24
        XCTAssertEqual(SafetensorsConversion.halfToFloat(0x7BFF), 65504)
        XCTAssertEqual(SafetensorsConversion.halfToFloat(0xFC00), -.infinity)
        XCTAssertEqual(SafetensorsConversion.floatToHalf(65520), 0x7C00)  // rounds up to infinity
        XCTAssertEqual(SafetensorsConversion.floatToHalf(65519.99), 0x7BFF)
        XCTAssertEqual(SafetensorsConversion.floatToHalf(Float(bitPattern: 0x3300_0000)), 0)  // 2^-25: tie to even -> 0
        XCTAssertEqual(SafetensorsConversion.floatToHalf(Float(bitPattern: 0x3300_0001)), 1)
        XCTAssertEqual(SafetensorsConversion.floatToHalf(1 + 1.0 / 2048), 0x3C00)  // tie, even mantissa kept
        XCTAssertEqual(SafetensorsConversion.floatToHalf(1 + 3.0 / 2048), 0x3C02)  // tie, rounds to even
        XCTAssertEqual(SafetensorsConversion.floatToBFloat16(Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie -> even
        XCTAssertEqual(SafetensorsConversion.floatToBFloat16(Float(bitPattern: 0x3F81_8000)), 0x3F82)
    }

    /// Narrowing Float -> F16 agrees with the standard library's `Float16(Float)` on random and edge inputs.
    func testFloatToHalfMatchesStandardLibrary() {
        #if !(os(macOS) && arch(x86_64))
        var rng = Xoshiro256(seed: 9)
        for i in 0..<200_000 {
            let bits = i < 1000 ? UInt32(0x3300_0000 &+ UInt32(i) &* 0x1000) : UInt32(truncatingIfNeeded: rng.next())
            let f = Float(bitPattern: bits)
            let ours = SafetensorsConversion.floatToHalf(f)
            let ref = Float16(f).bitPattern
            if f.isNaN { XCTAssertEqual(ours & 0x7C00, 0x7C00); XCTAssertNotEqual(ours & 0x3FF, 0); continue }
            XCTAssertEqual(ours, ref, "\(bits)")
        }
        #endif
    }
}
