import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Round trips through Hugging Face model folders.
final class T5LoadingTests: XCTestCase {
    func temporaryDirectory() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("polypeft-t5-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testT5FolderRoundTrip() throws {
        let dir = temporaryDirectory()
        let config = try JSONValue(parsing: try Data(contentsOf: T5GoldenTests.caseDir.appendingPathComponent("base_config.json")))
        let source = try T5ForConditionalGeneration(config: try T5Config(json: config), seed: 5)
        var weights = source.stateDict()
        weights["lm_head.weight"] = nil                      // tied: one name is enough
        try HFModelFolder.write(config: config, tensors: weights, to: dir)
        let loaded = try T5ForConditionalGeneration.load(from: dir)
        let ids = [[3, 4, 5]], dec = [[0, 7]]
        XCTAssertEqual(try loaded.forward(inputIDs: ids, attentionMask: nil, decoderInputIDs: dec, .inference()).value,
                       try source.forward(inputIDs: ids, attentionMask: nil, decoderInputIDs: dec, .inference()).value)
        weights["encoder.final_layer_norm.weight"] = nil
        try HFModelFolder.write(config: config, tensors: weights, to: dir)
        XCTAssertThrowsError(try T5ForConditionalGeneration.load(from: dir)) { e in
            XCTAssertTrue("\(e)".contains("encoder.final_layer_norm.weight"), "\(e)")
        }
    }
}
