import Foundation

/// Page-aligned scratch memory for the packed matmul's panels, kept between calls.
///
/// The packed kernel needs a few hundred KiB to a few MiB per call (B's packed block and one A block per worker).
/// Allocated anew each time, a block above glibc's `mmap` threshold is mapped and unmapped per call, so every call
/// pays a page fault per 4 KiB touched (measured in BENCHMARKS.md, "A workspace cached between calls"). Buffers
/// are handed out to one caller at a time and returned afterwards; at most `maxCached` are kept, and nothing is
/// kept above `maxCachedBytes` (larger blocks are allocated and freed per call, as before).
///
/// The cache holds memory only, never values: every float the kernel reads from a buffer it has written first in
/// the same call, so reuse cannot change a result.
final class GemmWorkspace: @unchecked Sendable {
    static let shared = GemmWorkspace()

    static let pageBytes = 4096
    /// Buffers kept for reuse: one per concurrent caller (the pool's caller, and a second one that found it busy).
    static let maxCached = 2
    /// Larger buffers are not kept. The packed kernel needs at most `384 x 4080` floats for B (6.0 MiB) plus
    /// `120 x 384` per worker for A (180 KiB): 6.3 MiB on 2 cores, 17 MiB on 64, all cached.
    static let maxCachedBytes = 64 << 20

    private let lock = NSLock()
    // Guarded by `lock`: free buffers and their sizes in bytes.
    private var free: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []

    /// Runs `body` with a page-aligned buffer of at least `count` floats, uninitialised, for the duration of the call.
    func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let bytes = Swift.max(count, 1) * MemoryLayout<Float>.stride
        let buffer = take(bytes)
        defer { give(buffer) }
        return try body(buffer.pointer.bindMemory(to: Float.self, capacity: count))
    }

    /// The smallest free buffer that is large enough, or a new one (replacing the largest free one, so the cache
    /// follows the sizes in use).
    private func take(_ bytes: Int) -> (pointer: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        let smaller: (Int, Int) -> Bool = { self.free[$0].bytes < self.free[$1].bytes }
        if let fit = free.indices.filter({ free[$0].bytes >= bytes }).min(by: smaller) {
            let buffer = free.remove(at: fit)
            lock.unlock()
            return buffer
        }
        let replaced = free.indices.max(by: smaller).map { free.remove(at: $0) }
        lock.unlock()
        replaced?.pointer.deallocate()
        return (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Self.pageBytes), bytes)
    }

    private func give(_ buffer: (pointer: UnsafeMutableRawPointer, bytes: Int)) {
        lock.lock()
        if buffer.bytes <= Self.maxCachedBytes && free.count < Self.maxCached {
            free.append(buffer)
            lock.unlock()
        } else {
            lock.unlock()
            buffer.pointer.deallocate()
        }
    }

    /// The buffers held now (for tests).
    var cachedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return free.count
    }
}
