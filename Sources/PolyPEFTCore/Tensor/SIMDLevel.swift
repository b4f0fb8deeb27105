import Foundation

/// The widest vectors the kernels may use on the running CPU.
///
/// Every module is built for a baseline (x86-64-v3 on x86-64: AVX2 and FMA; arm64's own), and the kernels written with
/// 8-lane vectors run everywhere. On x86-64 CPUs with AVX-512 (x86-64-v4), the packed matmul runs a 12x32 tile of
/// 16-lane vectors instead (`WideGemm` in PolyPEFTAVX512), about 1.6 times the baseline's throughput on an AVX-512
/// Xeon (BENCHMARKS.md, "Issue 21, first round"). The level is found once, from the CPU's flags (Linux: `/proc/cpuinfo`; Darwin:
/// `hw.optional.avx512*`):
///
/// ```
/// detected = .avx512  if the CPU reports avx512f, avx512bw, avx512cd, avx512dq and avx512vl (x86-64-v4)
///            .baseline otherwise, and on every other architecture
/// POLYPEFT_SIMD=baseline (or avx2) in the environment keeps the baseline kernels on such a CPU; a level the CPU
/// does not have is never used, whatever the environment says
/// ```
public enum SIMDLevel: Int, Sendable, Comparable, CustomStringConvertible {
    /// The build's baseline vectors (8 lanes of Float).
    case baseline = 0
    /// AVX-512 (16 lanes of Float) for the packed matmul.
    case avx512 = 1

    public static func < (a: SIMDLevel, b: SIMDLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String { self == .avx512 ? "avx512" : "baseline" }

    /// What the CPU supports.
    public static let detected: SIMDLevel = cpuSupportsAVX512() ? .avx512 : .baseline

    /// The level the process uses unless a scope lowers it: `detected`, lowered by `POLYPEFT_SIMD=baseline`.
    public static let defaultLevel: SIMDLevel = {
        let requested = ProcessInfo.processInfo.environment["POLYPEFT_SIMD"]?.lowercased()
        return requested == "baseline" || requested == "avx2" ? .baseline : detected
    }()

    /// A scoped cap on the level (`SIMDLevel.$limit.withValue(.baseline) { ... }`): tests run both kernels in one
    /// process, benchmarks compare them. Task-local; read by a kernel's caller before it forks its workers.
    @TaskLocal public static var limit: SIMDLevel?

    /// The level the kernels use now: the smallest of `defaultLevel` and `limit`.
    public static var current: SIMDLevel { Swift.min(defaultLevel, limit ?? defaultLevel) }

    static func cpuSupportsAVX512() -> Bool {
        #if arch(x86_64)
        let needed = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
        #if os(Linux)
        // The first "flags" line of /proc/cpuinfo (every core reports the same). The kernel lists a feature only
        // when it also saves the registers it needs on context switches.
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(line.split(separator: " ").map(String.init))
        return needed.allSatisfy(flags.contains)
        #elseif canImport(Darwin)
        return needed.allSatisfy { name in
            var value: Int32 = 0
            var size = MemoryLayout<Int32>.size
            return sysctlbyname("hw.optional.\(name)", &value, &size, nil, 0) == 0 && value == 1
        }
        #else
        return false
        #endif
        #else
        return false
        #endif
    }
}
