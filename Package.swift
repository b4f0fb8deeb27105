// swift-tools-version:6.2
import PackageDescription

// Kernels are written with `SIMD8<Float>.addingProduct`, which is one `vfmadd231ps ymm` instruction only when the
// compiler may use AVX2 + FMA. On x86-64 we therefore build for the x86-64-v3 micro-architecture level (Haswell and
// later, Zen and later). Without it the same code compiles to SSE2 and runs 3-4x slower. Other architectures (arm64
// has FMA in its base ISA) need no flag. See README "Portability".
#if arch(x86_64)
let simdFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
let fmaDefine: [SwiftSetting] = [.define("POLYPEFT_FMA")]
#elseif arch(arm64)
let simdFlags: [SwiftSetting] = []
let fmaDefine: [SwiftSetting] = [.define("POLYPEFT_FMA")]
#else
let simdFlags: [SwiftSetting] = []
let fmaDefine: [SwiftSetting] = []
#endif

let package = Package(
    name: "PolyPEFT",
    products: [
        .library(name: "PolyPEFT", targets: ["PolyPEFT"]),
        .executable(name: "polyctl", targets: ["polyctl"]),
    ],
    targets: [
        .target(
            name: "PolyPEFT",
            swiftSettings: simdFlags + fmaDefine,
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        .executableTarget(
            name: "polyctl",
            dependencies: ["PolyPEFT"],
            swiftSettings: simdFlags + fmaDefine
        ),
        .testTarget(
            name: "PolyPEFTTests",
            dependencies: ["PolyPEFT"],
            resources: [.copy("Resources")],
            swiftSettings: simdFlags + fmaDefine
        ),
        .testTarget(
            name: "polyctlTests",
            dependencies: ["polyctl", "PolyPEFT"],
            swiftSettings: simdFlags + fmaDefine
        ),
    ],
    swiftLanguageModes: [.v6]
)
