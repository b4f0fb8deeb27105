import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Shared helpers for the IO tests: golden files and scratch directories.
enum IOTestSupport {
    /// The `golden` resource folder.
    static var goldenRoot: URL { Bundle.module.url(forResource: "golden", withExtension: nil)! }

    /// Every `.safetensors` file of the golden set, sorted by path.
    static func goldenSafetensors() -> [URL] {
        let e = FileManager.default.enumerator(at: goldenRoot, includingPropertiesForKeys: nil)!
        return e.compactMap { $0 as? URL }.filter { $0.pathExtension == "safetensors" }.sorted { $0.path < $1.path }
    }

    /// Every golden adapter case folder name (a folder with an `adapter/` inside; `t5_generate` has none).
    static func goldenCases() -> [String] {
        (try! FileManager.default.contentsOfDirectory(atPath: goldenRoot.path))
            .filter { !$0.contains(".") && FileManager.default.fileExists(atPath: goldenRoot.appendingPathComponent("\($0)/adapter").path) }
            .sorted()
    }

    /// A fresh empty directory under the system temporary directory.
    static func scratchDirectory(_ name: String = #function) -> URL {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("polypeft-io-\(clean)-\(UInt32.random(in: 0 ... .max))", isDirectory: true)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A safetensors buffer from a JSON header text and raw data bytes (the header is written exactly as given).
    static func rawFile(header: String, data: [UInt8] = [], headerLength: UInt64? = nil) -> Data {
        var out = Data()
        let h = Data(header.utf8)
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(h)
        out.append(contentsOf: data)
        return out
    }

    /// The message of the `FileFormatError` thrown by `body`, or a failure.
    static func safetensorsMessage(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            try body()
            XCTFail("expected a FileFormatError, but no error was thrown", file: file, line: line)
        } catch let e as FileFormatError {
            return e.message
        } catch {
            XCTFail("expected a FileFormatError, got \(error)", file: file, line: line)
        }
        return nil
    }
}
