import Dispatch
import Foundation

/// The small thread helper the kernels share: a fork-join over a fixed number of workers.
///
/// The workers run on `WorkerPool.shared`'s persistent helpers (a hand-off of about a microsecond), or on libdispatch's
/// threads through `DispatchQueue.concurrentPerform` when the pool is in use by another caller or too small; either
/// way `run` returns when all have finished, so a kernel is a plain function call for its caller.
public enum Parallel {
    /// The default number of threads of the kernels: `POLYPEFT_THREADS` when it holds a positive integer (read once,
    /// at first use), otherwise `ProcessInfo.processInfo.activeProcessorCount`.
    public static let defaultThreads: Int = {
        if let s = ProcessInfo.processInfo.environment["POLYPEFT_THREADS"], let n = Int(s), n > 0 { return n }
        return Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// A scoped limit on the kernels' threads, set with `Parallel.$threadLimit.withValue(n) { ... }` (benchmarks
    /// comparing 1 and 2 threads in one process); nil means `defaultThreads`. Task-local, so it never leaks out of
    /// the scope that set it.
    @TaskLocal public static var threadLimit: Int?

    /// The threads a kernel uses when its caller does not say: `threadLimit` if set, else `defaultThreads`.
    public static var currentThreads: Int { threadLimit ?? defaultThreads }

    /// Elements from which row-wise kernels with an `exp` per element (softmax, log-softmax, cross-entropy) split
    /// their rows among the threads.
    package static let elementwiseThreshold = 1 << 16

    /// Runs `body(w)` for every worker `w` in `0..<workers`: inline when `workers <= 1`, otherwise concurrently (the
    /// calling thread is worker 0 and may also run indices no helper has picked up yet, so a body must never wait
    /// for another worker). Workers must write to disjoint memory.
    @inline(__always)
    static func run(workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 {
            body(0)
        } else {
            // The workers touch disjoint memory through raw pointers the caller owns for the whole call, which
            // Swift cannot prove: the closure is handed over as @unchecked Sendable.
            withoutActuallyEscaping(body) { escaping in
                if WorkerPool.shared.run(workers: workers, escaping) { return }
                let work = UncheckedSendable(escaping)
                DispatchQueue.concurrentPerform(iterations: workers) { work.value($0) }
            }
        }
    }

    /// Runs `body(task, worker)` for every task in `0..<tasks` on at most `workers` threads. Tasks are handed out one
    /// at a time in order, so a worker delayed by another process's load (the machine is shared) takes fewer of them
    /// instead of holding up the join. `worker` (in `0..<workers`) names per-worker scratch buffers. Tasks must
    /// write to disjoint memory.
    package static func forEach(tasks: Int, workers: Int, _ body: (_ task: Int, _ worker: Int) -> Void) {
        let w = Swift.min(workers, tasks)
        if w <= 1 {
            for t in 0..<tasks { body(t, 0) }
            return
        }
        let queue = TaskCounter(limit: tasks)
        run(workers: w) { worker in
            while let t = queue.next() { body(t, worker) }
        }
    }

    /// Calls `body(part)` for near-equal contiguous parts of `0..<count`: the whole range inline when `work` is below
    /// `threshold`, else one part per thread (at most `threads`, at most `count`). Parts must write disjoint memory.
    /// The row-parallel kernels (softmax rows, cross-entropy, attention, per-row low-rank loops) share this split.
    package static func forEachPart(count: Int, work: Int, threshold: Int, threads: Int = currentThreads,
                            _ body: (Range<Int>) -> Void) {
        let workers = work < threshold ? 1 : Swift.min(threads, count)
        if workers <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        run(workers: workers) { w in body(part(w, of: workers, count: count)) }
    }

    /// The `w`-th of `workers` near-equal contiguous parts of `0..<count`.
    @inline(__always)
    static func part(_ w: Int, of workers: Int, count: Int) -> Range<Int> {
        (count * w / workers)..<(count * (w + 1) / workers)
    }
}

/// Hands out `0..<limit` one number at a time to concurrent workers.
final class TaskCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// Carries a value across the fork-join of `Parallel.run`; the caller guarantees the workers do not race.
package struct UncheckedSendable<Value>: @unchecked Sendable {
    package let value: Value
    package init(_ value: Value) { self.value = value }
}
