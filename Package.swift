// swift-tools-version:6.2
import PackageDescription

// Kernels are written with `SIMD8<Float>.addingProduct`, which is one `vfmadd231ps ymm` instruction only when the
// compiler may use AVX2 + FMA. On x86-64 we therefore build for the x86-64-v3 micro-architecture level (Haswell and
// later, Zen and later). Without it the same code compiles to SSE2 and runs 3-4x slower. Other architectures (arm64
// has FMA in its base ISA) need no flag. See README "Portability".
// The library is split into targets (one per layer); cross-module optimisation lets the optimiser inline and
// specialise small functions across them as it did within one module (a small model's training step lost 5% without).
let crossModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

#if arch(x86_64)
let simdFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
// PolyPEFTAVX512 alone is built for x86-64-v4 (AVX-512): the packed matmul's 12x32 kernel, which PolyPEFTCore calls
// only on CPUs that have AVX-512 (`SIMDLevel`). No cross-module optimisation there, so none of it is inlined into the
// modules built for the baseline.
let wideFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v4"])]
let fmaDefine: [SwiftSetting] = [.define("POLYPEFT_FMA")]
#elseif arch(arm64)
let simdFlags: [SwiftSetting] = []
let wideFlags: [SwiftSetting] = []
let fmaDefine: [SwiftSetting] = [.define("POLYPEFT_FMA")]
#else
let simdFlags: [SwiftSetting] = []
let wideFlags: [SwiftSetting] = []
let fmaDefine: [SwiftSetting] = []
#endif

let package = Package(
    name: "PolyPEFT",
    products: [
        .library(name: "PolyPEFT", targets: ["PolyPEFT"]),
        .executable(name: "polyctl", targets: ["polyctl"]),
    ],
    targets: [
        // The layers of the house, each depending only on those below it (`import PolyPEFT` re-exports them all).
        .target(name: "PolyPEFTAVX512", swiftSettings: wideFlags),
        .target(name: "PolyPEFTCore", dependencies: ["PolyPEFTAVX512"], swiftSettings: simdFlags + fmaDefine + crossModule,
                linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        .target(name: "PolyPEFTIO", dependencies: ["PolyPEFTCore"], swiftSettings: simdFlags + fmaDefine + crossModule),
        .target(name: "PolyPEFTModels", dependencies: ["PolyPEFTCore", "PolyPEFTIO"], swiftSettings: simdFlags + fmaDefine + crossModule),
        .target(name: "PolyPEFTMethods", dependencies: ["PolyPEFTCore", "PolyPEFTIO", "PolyPEFTModels"],
                swiftSettings: simdFlags + fmaDefine + crossModule),
        .target(name: "PolyPEFTTraining", dependencies: ["PolyPEFTCore", "PolyPEFTIO", "PolyPEFTModels", "PolyPEFTMethods"],
                swiftSettings: simdFlags + fmaDefine + crossModule),
        .target(name: "PolyPEFT",
                dependencies: ["PolyPEFTCore", "PolyPEFTIO", "PolyPEFTModels", "PolyPEFTMethods", "PolyPEFTTraining"]),
        .executableTarget(
            name: "polyctl",
            dependencies: ["PolyPEFT"],
            swiftSettings: simdFlags + fmaDefine + crossModule
        ),
        .testTarget(
            name: "PolyPEFTTests",
            dependencies: ["PolyPEFT", "PolyPEFTCore", "PolyPEFTIO", "PolyPEFTModels", "PolyPEFTMethods", "PolyPEFTTraining"],
            resources: [.copy("Resources")],
            swiftSettings: simdFlags + fmaDefine + crossModule
        ),
        .testTarget(
            name: "polyctlTests",
            dependencies: ["polyctl", "PolyPEFT"],
            swiftSettings: simdFlags + fmaDefine + crossModule
        ),
    ],
    swiftLanguageModes: [.v6]
)
