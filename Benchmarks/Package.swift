// swift-tools-version:6.2
import PackageDescription

// Benchmarks live in their own package so that the main package stays free of dependencies: this one depends on
// PolyPEFT by path. Build and run from this directory: `swift run -c release matmul-bench 1024 1024 1024`.
let package = Package(
    name: "PolyPEFTBenchmarks",
    dependencies: [.package(name: "PolyPEFT", path: "..")],
    targets: [
        .executableTarget(
            name: "matmul-bench",
            dependencies: [.product(name: "PolyPEFT", package: "PolyPEFT")]
        ),
        .executableTarget(
            name: "t5-bench",
            dependencies: [.product(name: "PolyPEFT", package: "PolyPEFT")]
        ),
        .executableTarget(
            name: "prefix-roundtrip",
            dependencies: [.product(name: "PolyPEFT", package: "PolyPEFT")]
        ),
        .executableTarget(
            name: "real-model-check",
            dependencies: [.product(name: "PolyPEFT", package: "PolyPEFT")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
