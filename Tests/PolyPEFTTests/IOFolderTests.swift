import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class IOFolderTests: XCTestCase {
    private struct InjectedFailure: Error {}
    private let fm = FileManager.default

    private func strayFiles(in dir: URL) throws -> [String] {
        try fm.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
    }

    func testAtomicWriteReplacesAndCleansUp() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.bin")
        try AtomicFile.write(Data("old".utf8), to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data("old".utf8))
        try AtomicFile.write(Data(), to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data())
        let big = Data((0..<(AtomicFile.chunkSize * 2 + 5)).map { UInt8(truncatingIfNeeded: $0 * 7) })
        var progress: [Int] = []
        try AtomicFile.write(big, to: url, afterChunk: { progress.append($0) })
        XCTAssertEqual(progress, [AtomicFile.chunkSize, 2 * AtomicFile.chunkSize, big.count])
        XCTAssertEqual(try Data(contentsOf: url), big)
        XCTAssertEqual(try strayFiles(in: dir), [])
    }

    /// A failure after part of the data is written leaves the previous file intact and no temporary file behind.
    func testAtomicWriteFailureMidSaveKeepsOldFile() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        let url = dir.appendingPathComponent("adapter_model.safetensors")
        let old = try Safetensors.encode(["w": Tensor([1, 2], shape: [2])])
        try AtomicFile.write(old, to: url)
        let new = Data(repeating: 0xAB, count: AtomicFile.chunkSize * 3)
        var sawPartialTemp = false
        XCTAssertThrowsError(try AtomicFile.write(new, to: url, afterChunk: { written in
            sawPartialTemp = (try? self.strayFiles(in: dir).count) == 1
            if written >= AtomicFile.chunkSize { throw InjectedFailure() }
        })) { XCTAssertTrue($0 is InjectedFailure) }
        XCTAssertTrue(sawPartialTemp, "the data went to a temporary file, not the target")
        XCTAssertEqual(try Data(contentsOf: url), old)
        XCTAssertEqual(try strayFiles(in: dir), [])
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).tensor("w").scalars, [1, 2])
    }

    /// Because saves rename a new file into place, a file already opened (memory-mapped) keeps reading the old
    /// contents when the same path is overwritten, e.g. loading an adapter and saving it back to the same folder.
    func testOpenFileSurvivesAtomicOverwrite() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        try Safetensors.write(["w": Tensor([1, 2, 3], shape: [3])], to: url)
        let opened = try SafetensorsFile(contentsOf: url)
        try Safetensors.write(["w": Tensor([7, 8, 9], shape: [3])], to: url)
        XCTAssertEqual(try opened.tensor("w").scalars, [1, 2, 3])
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).tensor("w").scalars, [7, 8, 9])
    }

    func testAtomicWriteIntoMissingDirectoryThrowsNamingThePath() {
        let url = URL(fileURLWithPath: "/nonexistent-polypeft-dir/x.json")
        XCTAssertThrowsError(try AtomicFile.write("{}", to: url)) { e in
            XCTAssertEqual((e as? FileFormatError)?.path, url.path)
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent-polypeft-dir/x.json: creating the temporary file .x.json.tmp-"), "\(e)")
            XCTAssertTrue("\(e)".hasSuffix("failed: No such file or directory"), "\(e)")
        }
    }

    func testPeftAdapterGoldenReadAndByteIdenticalRewrite() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        for name in IOTestSupport.goldenCases() {
            let source = IOTestSupport.goldenRoot.appendingPathComponent("\(name)/adapter")
            let (config, tensors) = try PeftAdapterFolder.read(from: source)
            XCTAssertEqual(config["peft_type"], "POLY")
            XCTAssertTrue(tensors.keys.allSatisfy { $0.hasPrefix("base_model.model.") })
            let out = try PeftAdapterFolder.write(config: config, tensors: tensors, to: dir.appendingPathComponent(name))
            XCTAssertEqual(out.path, dir.appendingPathComponent(name).path)
            for file in [PeftAdapterFolder.configFileName, PeftAdapterFolder.weightsFileName] {
                XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(file)),
                               try Data(contentsOf: source.appendingPathComponent(file)), "\(name)/\(file)")
            }
        }
        let (_, t) = try PeftAdapterFolder.read(from: IOTestSupport.goldenRoot.appendingPathComponent("poly_k4_s1_r2/adapter"))
        XCTAssertEqual(t["base_model.model.fc1.poly_lora_A"]?.shape, [1, 4, 16, 2])
        XCTAssertEqual(t["base_model.model.fc2.poly_lora_B"]?.shape, [1, 4, 2, 8])
    }

    func testPeftNonDefaultAdapterGoesToSubfolder() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        let config: JSONValue = ["peft_type": "POLY", "r": 2]
        let out = try PeftAdapterFolder.write(config: config, tensors: ["base_model.model.fc1.poly_lora_A": .ones([1, 2])],
                                              to: dir, adapterName: "task_b")
        XCTAssertEqual(out.path, dir.appendingPathComponent("task_b").path)
        XCTAssertEqual(PeftAdapterFolder.folder(for: "task_b", in: dir).path, out.path)
        XCTAssertEqual(PeftAdapterFolder.folder(for: "default", in: dir).path, dir.path)
        XCTAssertFalse(fm.fileExists(atPath: dir.appendingPathComponent("adapter_config.json").path))
        let back = try PeftAdapterFolder.read(from: out)
        XCTAssertEqual(back.config, config)
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("adapter_config.json"), encoding: .utf8),
                       "{\n  \"peft_type\": \"POLY\",\n  \"r\": 2\n}")
        XCTAssertEqual(try SafetensorsFile(contentsOf: out.appendingPathComponent("adapter_model.safetensors")).metadata, ["format": "pt"])
        XCTAssertThrowsError(try PeftAdapterFolder.write(config: config, tensors: [:], to: dir, adapterName: "../x"))
        XCTAssertThrowsError(try PeftAdapterFolder.write(config: [1], tensors: [:], to: dir))
    }

    func testPeftFolderErrorsNameThePath() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        func msg(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(msg { _ = try PeftAdapterFolder.read(from: dir.appendingPathComponent("nope")) },
                       "\(dir.path)/nope: adapter folder does not exist")
        XCTAssertEqual(msg { _ = try PeftAdapterFolder.read(from: dir) },
                       "\(dir.path)/adapter_config.json: missing adapter_config.json: not a PEFT adapter folder")
        try AtomicFile.write("{\"r\": 2}", to: dir.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(msg { _ = try PeftAdapterFolder.read(from: dir) }, "\(dir.path)/adapter_model.safetensors: missing adapter_model.safetensors")
        try AtomicFile.write(Data([0x80, 0x02]), to: dir.appendingPathComponent("adapter_model.bin"))
        XCTAssertEqual(msg { _ = try PeftAdapterFolder.read(from: dir) }, "\(dir.path)/adapter_model.bin: not supported: adapter_model.bin "
            + "is a PyTorch pickle; convert it to safetensors (load it in PEFT and save_pretrained(..., safe_serialization=True))")
        try AtomicFile.write(Data([1, 2]), to: dir.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(msg { _ = try PeftAdapterFolder.read(from: dir) },
                       "\(dir.path)/adapter_model.safetensors: file is 2 bytes, too short for the 8-byte header length")
        try AtomicFile.write("{\"r\": 2, \"r\": 3}", to: dir.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(msg { _ = try PeftAdapterFolder.read(from: dir) },
                       "\(dir.path)/adapter_config.json: invalid JSON: duplicate key \"r\" at byte 9")
    }

    func testHFModelFolderSingleAndSharded() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        var rng = Xoshiro256(seed: 5)
        let tensors: [String: Tensor] = [
            "a.weight": .normal([4, 4], using: &rng), "b.weight": .normal([8, 4], using: &rng),
            "c.bias": .normal([4], using: &rng), "d.weight": .normal([2, 2], using: &rng),
        ]
        let config: JSONValue = ["model_type": "mlp", "layer_norm_epsilon": 1e-06]
        let single = dir.appendingPathComponent("single")
        try HFModelFolder.write(config: config, tensors: tensors, to: single)
        let readSingle = try HFModelFolder.read(from: single)
        XCTAssertEqual(readSingle.config, config)
        XCTAssertEqual(readSingle.tensors, tensors)

        let sharded = dir.appendingPathComponent("sharded")
        try HFModelFolder.write(config: config, tensors: tensors, to: sharded, maxShardBytes: 100)
        let files = try fm.contentsOfDirectory(atPath: sharded.path).sorted()
        XCTAssertEqual(files, ["config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                               "model-00003-of-00003.safetensors", "model.safetensors.index.json"])
        let index = try JSONValue(parsing: Data(contentsOf: sharded.appendingPathComponent("model.safetensors.index.json")))
        XCTAssertEqual(index["metadata"]?["total_size"], .int((16 + 32 + 4 + 4) * 4))
        XCTAssertEqual(index["weight_map"]?["b.weight"], "model-00002-of-00003.safetensors")
        XCTAssertEqual(try HFModelFolder.read(from: sharded).tensors, tensors)
    }

    func testHFModelFolderErrors() throws {
        let dir = IOTestSupport.scratchDirectory()
        defer { try? fm.removeItem(at: dir) }
        func msg(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) }, "\(dir.path)/config.json: missing config.json: not a Hugging Face model folder")
        try AtomicFile.write("{}", to: dir.appendingPathComponent("config.json"))
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) }, "\(dir.path): no model.safetensors or model.safetensors.index.json in the folder")
        let indexURL = dir.appendingPathComponent("model.safetensors.index.json")
        try AtomicFile.write(#"{"metadata": {}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}"#, to: indexURL)
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) },
                       "\(dir.path)/model-00001-of-00001.safetensors: shard listed in model.safetensors.index.json is missing")
        try Safetensors.write(["v": .ones([1])], to: dir.appendingPathComponent("model-00001-of-00001.safetensors"))
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) }, "\(dir.path)/model-00001-of-00001.safetensors: "
            + "model.safetensors.index.json maps tensor \"w\" to this shard but it does not contain it")
        try AtomicFile.write(#"{"weight_map": {"w": "../../etc/passwd"}}"#, to: indexURL)
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) },
                       "\(indexURL.path): weight_map entry for \"w\" names \"../../etc/passwd\", not a file in the folder")
        try AtomicFile.write(#"{"weight_map": {"w": 3}}"#, to: indexURL)
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) }, "\(indexURL.path): weight_map entry for \"w\" is a integer, not a file name")
        try AtomicFile.write(#"{"metadata": {}}"#, to: indexURL)
        XCTAssertEqual(msg { _ = try HFModelFolder.read(from: dir) }, "\(indexURL.path): missing \"weight_map\" object")
    }
}
