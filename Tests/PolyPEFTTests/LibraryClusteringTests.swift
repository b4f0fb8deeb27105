import Foundation
import XCTest
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods

/// Model-based clustering of an adapter library against microsoft/mttl's procedure run with numpy and scikit-learn
/// (`golden_mbc/`, `Benchmarks/golden/make_mbc_cases.py`): thresholds, singular values, the similarity matrix and the
/// clusters (labels numbered by first appearance) agree.
final class LibraryClusteringTests: XCTestCase {
    static var directory: URL { Bundle.module.url(forResource: "golden_mbc", withExtension: nil)! }

    func testGoldenCases() throws {
        let index = try JSONValue(parsing: try Data(contentsOf: Self.directory.appendingPathComponent("cases.json")))
        let cases = index["cases"]?.arrayValue ?? []
        XCTAssertEqual(cases.count, 2)
        for c in cases {
            let name = c["name"]!.stringValue!
            let dir = Self.directory.appendingPathComponent(name)
            var library = AdapterLibrary()
            let order = c["expert_order"]!.arrayValue!.map { $0.stringValue! }
            for e in order { try library.add(name: e, directory: dir.appendingPathComponent("experts/\(e)")) }
            let config = c["config"]!
            let options = LibraryClustering.Options(components: config["n_components"]!.intValue!, sparsity: config["sparsity_threshold"]!.doubleValue!,
                                                    clusters: config["k"]!.intValue!, restarts: 10, seed: 0)
            let r = try LibraryClustering.cluster(library, options: options)
            let golden = try Safetensors.read(dir.appendingPathComponent("mbc.safetensors"), convertingIntegers: true)
            assertGolden(Tensor(r.thresholds.map(Float.init), shape: [order.count]), golden["thresholds"]!, rtol: 1e-6, "\(name) thresholds")
            let values = c["singular_values"]!.arrayValue!.map { $0.doubleValue! }
            XCTAssertEqual(r.singularValues.count, values.count, name)
            for (a, b) in zip(r.singularValues, values) { XCTAssertEqual(a, b, accuracy: 1e-5 * values[0], name) }
            assertGolden(Tensor(r.similarity.flatMap { $0.map(Float.init) }, shape: [order.count, order.count]), golden["similarity"]!,
                         rtol: 1e-5, "\(name) similarity")
            XCTAssertEqual(r.labels, c["labels_first_appearance"]!.arrayValue!.map { $0.intValue! }, name)
        }
    }

    func testQuantileKMeansAndErrors() throws {
        XCTAssertEqual(LibraryClustering.quantile([4, 1, 3, 2], 0.5), 2.5)
        XCTAssertEqual(LibraryClustering.quantile([1, 2, 3], 1), 3)
        let (labels, inertia) = LibraryClustering.kMeans([[0, 0], [0, 0.1], [5, 5], [5, 5.1]], k: 2, restarts: 3, seed: 1)
        XCTAssertEqual(labels, [0, 0, 1, 1])
        XCTAssertEqual(inertia, 0.01, accuracy: 1e-9)
        var lib = AdapterLibrary()
        let dir = Self.directory.appendingPathComponent("mbc_components/experts")
        try lib.add(name: "a", directory: dir.appendingPathComponent("c0_t0"))
        XCTAssertThrowsError(try LibraryClustering.cluster(lib, options: .init())) { XCTAssertTrue("\($0)".contains("at least 2 adapters")) }
        try lib.add(name: "b", directory: dir.appendingPathComponent("c1_t0"))
        XCTAssertThrowsError(try LibraryClustering.cluster(lib, options: .init(clusters: 3))) { XCTAssertTrue("\($0)".contains("clusters must be in 1...2")) }
        XCTAssertThrowsError(try LibraryClustering.cluster(lib, options: .init(sparsity: 1))) { XCTAssertTrue("\($0)".contains("sparsity must be in [0, 1)")) }
    }
}
