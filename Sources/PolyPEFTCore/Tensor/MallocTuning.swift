#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An opt-in setting of the C allocator for processes that allocate large tensors over and over (training loops,
/// benchmarks): glibc then keeps freed blocks of up to 32 MiB for reuse instead of returning them to the system.
///
/// Every Tensor result is a fresh `[Float]` (value semantics). With glibc's defaults, a block above its dynamic
/// mmap threshold is mapped on allocation and unmapped on free, and freed heap memory above the trim threshold goes
/// back to the system; either way the next tensor of that size faults its pages in again, one minor fault and one
/// zeroed page per 4 KiB. `keepLargeBlocks` sets:
///
/// ```
/// M_MMAP_THRESHOLD = 32 MiB    blocks up to 32 MiB (a [2048, 4096] Float tensor) come from the heap
/// M_TRIM_THRESHOLD = 1 GiB     up to 1 GiB of freed heap stays mapped for the next allocations
/// ```
///
/// A training loop whose tensors stay below 32 MiB then faults far less, and spends that much less system time
/// (BENCHMARKS.md, "Large tensors and the allocator"); larger blocks are still mapped and unmapped each time. The
/// cost: up to 1 GiB of freed memory stays with the process. (At 256 MiB, a BERT training step of MiniLM's shape at
/// 32 x 128 on 2 threads freed more than that at its end and faulted 66,000 pages back in at every step: about
/// 260 MiB of fresh pages; BENCHMARKS.md, "Issue 21, first round".)
///
/// It changes the whole process's allocator, so the library never calls it on its own: `polyctl` calls it at start,
/// and an application opts in the same way (or sets
/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824` in its environment).
public enum MallocTuning {
    /// The largest block served from the heap after `keepLargeBlocks()` (glibc's documented upper limit on 64-bit).
    public static let mmapThreshold: Int32 = 32 << 20
    /// How much freed heap memory the process keeps after `keepLargeBlocks()`.
    public static let trimThreshold: Int32 = 1 << 30

    /// Applies the settings above; returns true when glibc accepted both, false where there is no glibc `mallopt`
    /// (macOS, musl), in which case nothing changes. Call it early, before the large allocations.
    @discardableResult
    public static func keepLargeBlocks() -> Bool {
        #if canImport(Glibc)
        // mallopt is not in Swift's Glibc module (malloc.h is not imported); it is looked up by name, with its C
        // signature. Parameter numbers from glibc's <malloc.h>.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mTrimThreshold: Int32 = -1, mMmapThreshold: Int32 = -3
        guard let symbol = dlsym(nil, "mallopt") else { return false }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let mmapSet = mallopt(mMmapThreshold, mmapThreshold) == 1
        let trimSet = mallopt(mTrimThreshold, trimThreshold) == 1
        return mmapSet && trimSet
        #else
        return false
        #endif
    }

    /// The minor page faults of the process so far (`getrusage`'s `ru_minflt`: a page of fresh memory touched for
    /// the first time), to measure what these settings change; nil where there is no `getrusage`.
    public static func minorPageFaults() -> Int? {
        var usage = rusage()
        #if canImport(Glibc)
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return nil }
        #elseif canImport(Darwin)
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return nil }
        #else
        return nil
        #endif
        return usage.ru_minflt
    }
}
