import Foundation
import XCTest
@testable import polyctl

/// A test case that runs `polyctl` in-process in a fresh temporary folder `root` (removed afterwards).
class CLITestCase: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("polyctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    /// Runs `polyctl args`: exit code and what it wrote to standard output and error.
    func run(_ args: [String]) -> (code: Int32, out: String, err: String) {
        let c = Console(passthrough: false)
        let code = PolyCtl.run(args, console: c)
        return (code, c.stdout, c.stderr)
    }

    /// A short training run on the built-in data, with no baseline and no progress output.
    let tiny = ["--steps", "30", "--eval-every", "10", "--batch-size", "64", "--no-baseline", "--quiet"]
}
