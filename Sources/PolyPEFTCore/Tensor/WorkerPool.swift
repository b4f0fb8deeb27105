#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// The persistent helper threads behind `Parallel.run`: a fork-join whose hand-off costs about a microsecond when the
/// helpers are awake, where `DispatchQueue.concurrentPerform` pays the wake-up of a parked thread (tens of µs on this
/// VM) every time. Internal infrastructure like OpenBLAS's threads: created lazily at first use, invisible to users.
///
/// ```
/// caller (worker 0)                          helper h (spins <= spinNanos after a job, then parks)
/// lock; busy = true; job = body; gen += 1    poll gen under trylock ... sees gen changed
/// unlock; body(0)                            lock; w = next; next += 1; running += 1; unlock
/// lock; claim and run every unclaimed w      body(w)
/// wait (spin, then park) for running == 0    lock; running -= 1; unlock
/// job = nil; busy = false; unlock
/// ```
///
/// The caller runs every worker index no helper has claimed by the time it finishes its own, so a helper that is
/// parked, or descheduled by another process, never delays the join by more than the part it actually took. One job
/// at a time: a second caller (another thread, or a nested `Parallel.run` inside a worker) gets `false` from `run`
/// and uses `concurrentPerform` instead. Idle helpers park on a condition variable after `spinNanos`, so the pool
/// costs no CPU when the library is not computing. All shared state is guarded by one pthread mutex.
final class WorkerPool: @unchecked Sendable {
    /// The pool of the process: up to `activeProcessorCount - 1` helpers, started on demand.
    static let shared = WorkerPool(maxHelpers: Swift.max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    /// How long a helper polls for the next job after finishing one before parking (back-to-back small products
    /// then hand over in ~1 µs), and how long the caller polls for the helpers' end before parking.
    static let spinNanos: UInt64 = 100_000, joinSpinNanos: UInt64 = 50_000

    let maxHelpers: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)   // helpers park here
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)   // the caller parks here
    // Guarded by `mutex`:
    private var busy = false, started = 0, generation = 0
    private var job: ((Int) -> Void)?
    private var workers = 0, next = 0, running = 0
    private var parkedHelpers = 0, callerParked = false

    init(maxHelpers: Int) {
        self.maxHelpers = maxHelpers
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
    }

    /// Runs `body(w)` for every `w` in `0..<workers` on this thread and up to `workers - 1` helpers, and returns
    /// true once all have returned; returns false at once (running nothing) when the pool is in use or too small.
    /// `body` is only referenced until `run` returns.
    func run(workers: Int, _ body: @escaping (Int) -> Void) -> Bool {
        pollLock()
        guard !busy, workers >= 2, workers - 1 <= maxHelpers else {
            pthread_mutex_unlock(mutex)
            return false
        }
        busy = true
        while started < workers - 1 {
            started += 1
            let thread = Thread { [self] in helperLoop() }
            thread.name = "PolyPEFT.WorkerPool.\(started)"
            thread.start()
        }
        job = body
        self.workers = workers
        next = 1
        generation &+= 1
        if parkedHelpers > 0 { pthread_cond_broadcast(wake) }
        pthread_mutex_unlock(mutex)

        body(0)

        pollLock()
        while next < workers {
            let w = next
            next += 1
            pthread_mutex_unlock(mutex)
            body(w)
            pollLock()
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.joinSpinNanos
        while running > 0 {
            pthread_mutex_unlock(mutex)
            let now = pause()
            pollLock()
            if running > 0 && now >= deadline {
                callerParked = true
                pthread_cond_wait(done, mutex)
                callerParked = false
            }
        }
        job = nil
        busy = false
        pthread_mutex_unlock(mutex)
        return true
    }

    /// A helper: wait for a job (poll, then park), claim a worker index if one is left, run it, repeat.
    private func helperLoop() {
        var seen = 0
        pollLock()
        while true {
            var deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanos
            while generation == seen {
                pthread_mutex_unlock(mutex)
                let now = pause()
                pollLock()
                if generation == seen && now >= deadline {
                    parkedHelpers += 1
                    pthread_cond_wait(wake, mutex)
                    parkedHelpers -= 1
                    deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanos
                }
            }
            seen = generation
            if job != nil && next < workers {
                let w = next
                next += 1
                running += 1
                pthread_mutex_unlock(mutex)
                perform(w)
                pollLock()
                running -= 1
                if running == 0 && callerParked { pthread_cond_signal(done) }
            }
        }
    }

    /// Runs the claimed index. A separate frame, so the helper's reference to the caller's closure is released before
    /// `running` drops (the caller's `withoutActuallyEscaping` checks that no reference is left). `job` is set
    /// before the claim and cleared only after `running` returns to 0, so reading it here without the lock is safe.
    @inline(never)
    private func perform(_ w: Int) {
        job.unsafelyUnwrapped(w)
    }

    /// Between two polls, with the mutex free: gives the CPU to any other runnable thread (on a busy machine a
    /// polling helper must not keep the caller it waits for off the CPU), then reads the clock.
    @inline(__always)
    private func pause() -> UInt64 {
        sched_yield()
        return DispatchTime.now().uptimeNanoseconds
    }

    /// Takes the mutex with `trylock`, so no thread sleeps in the kernel on the briefly held lock (a plain
    /// `pthread_mutex_lock` that finds it taken parks in `futex_wait`, and its wake-up costs what the pool saves).
    @inline(__always)
    private func pollLock() {
        while pthread_mutex_trylock(mutex) != 0 {}
    }
}
