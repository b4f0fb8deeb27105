import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// The adapters library's prefix tuning, gated and not, flat, and its MAM and UniPELT unions, against the library
/// (1.3.0): every case of `golden_adapters_prefix/` (`Benchmarks/golden/make_adapters_prefix_cases.py`) loads from
/// the library's folder (the pool under every alias the library's `state_dict()` lists), reproduces the eval output,
/// the base output, the gating scores and the gradients, and is written back as `written/` (the pool once; the
/// generator checked that the library loads it).
final class AdaptersPrefixGoldenTests: XCTestCase {
    static var directory: URL { Bundle.module.url(forResource: "golden_adapters_prefix", withExtension: nil)! }

    func testGoldenCases() throws {
        let index = try JSONValue(parsing: try Data(contentsOf: Self.directory.appendingPathComponent("cases.json")))
        let cases = index["cases"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 8)
        var gated = 0
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let dir = Self.directory.appendingPathComponent(name)
            do { gated += try AdapterHubGolden.runCase(c, in: dir, rtol: 1e-5, written: dir.appendingPathComponent("written")) } catch {
                XCTFail("golden case \(name) could not run: \(error)")
            }
        }
        XCTAssertGreaterThanOrEqual(gated, 4, "cases with gating scores")
    }

    /// `ConfigUnion.mam()` and `.uniPELT()` are the library's `MAMConfig()` and `UniPELTConfig()` (their saved
    /// configs, in `cases.json`'s `library_default`).
    func testPresetsAreTheLibrarysDefaults() throws {
        let index = try JSONValue(parsing: try Data(contentsOf: Self.directory.appendingPathComponent("cases.json")))
        var seen = Set<String>()
        for c in index["cases"]?.arrayValue ?? [] {
            guard let name = c["name"]?.stringValue, let expected = c["library_default"]?["config"] else { continue }
            let preset = name.hasPrefix("mam") ? ConfigUnion.mam() : ConfigUnion.uniPELT()
            XCTAssertEqual(preset.adapterHubConfig, expected, name)
            seen.insert(String(name.prefix { $0 != "_" }))
        }
        XCTAssertEqual(seen, ["mam", "unipelt"])
    }

    /// Two prefix-tuning parts in one union would fill the same attention slots: refused, naming both parts.
    func testTwoPrefixPartsAreRefused() throws {
        let model = try BertModel(config: BertModelTests.tinyConfig(), addPoolingLayer: false, seed: 1)
        var rng = Xoshiro256(seed: 2)
        let union = ConfigUnion([AdaptersPrefixConfig(prefixLength: 2, bottleneckSize: 4), AdaptersPrefixConfig(prefixLength: 3, bottleneckSize: 4)])
        XCTAssertThrowsError(try PeftModel(wrapping: model, config: union, using: &rng)) { error in
            XCTAssertTrue("\(error)".contains("configs[0] (POLYPEFT_ADAPTERS_PREFIX) and configs[1] (POLYPEFT_ADAPTERS_PREFIX) both fill the attention prefix slot"), "\(error)")
        }
    }

    /// Generation with the key/value cache agrees with recomputing every step, greedy and beam search, for a T5 with
    /// the library's (ungated) prefix tuning in all three places and a parallel adapter (MAM): the prefix stays out of
    /// the cache and the relative bias keeps its offset. (A gated prefix reads only the new token's state when
    /// cached, as in the library, so it is left out here.)
    func testCachedGenerationWithPrefixes() throws {
        let model = try T5ForConditionalGeneration(config: T5TestSupport.tinyConfig(), seed: 21)
        var rng = Xoshiro256(seed: 3)
        let peft = try PeftModel(wrapping: model, config: ConfigUnion.mam(prefixTuning: AdaptersPrefixConfig(prefixLength: 3, bottleneckSize: 8)),
                                 using: &rng)
        for (_, p) in peft.adapterParameters() { p.value = try p.value + Tensor.normal(p.value.shape, std: 0.3, using: &rng) }
        let inputs = [[3, 4, 5, 6, 2], [7, 8, 9, 1, 0]], mask = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
        for beams in [1, 3] {
            var gen = GenerationConfig(maxLength: 8, numBeams: beams)
            let cached = try model.generate(inputIDs: inputs, attentionMask: mask, config: gen, .inference())
            gen.useCache = false
            XCTAssertEqual(cached, try model.generate(inputIDs: inputs, attentionMask: mask, config: gen, .inference()), "beams \(beams)")
        }
        let off = Context.inference()
        off.adaptersEnabled = false
        let ids = [[0, 5, 6]]
        let with = try model.forward(inputIDs: [inputs[0]], attentionMask: nil, decoderInputIDs: ids, .inference()).value.scalars
        let without = try model.forward(inputIDs: [inputs[0]], attentionMask: nil, decoderInputIDs: ids, off).value.scalars
        XCTAssertGreaterThan(zip(with, without).map { Swift.abs($0 - $1) }.max() ?? 0, 1e-3, "the prefixes change the output")
    }
}
