import XCTest
@testable import polyctl

final class HelpTests: XCTestCase {
    func testTopLevelHelpAndVersion() {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["--version"], console: c), 0)
        XCTAssertEqual(c.stdout, PolyCtl.version + "\n")
        let h = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["--help"], console: h), 0)
        XCTAssertTrue(h.stdout.hasPrefix("OVERVIEW: "))
        XCTAssertTrue(h.stdout.contains("USAGE: polyctl <subcommand> [options]"))
    }

    func testUnknownSubcommandIsUsageError() {
        let c = Console(passthrough: false)
        XCTAssertEqual(PolyCtl.run(["frobnicate"], console: c), 64)
        XCTAssertEqual(c.stderr, "error: unknown subcommand 'frobnicate'\nhint: see 'polyctl --help'\n")
    }
}
