/// Every rule that decides how a matrix product runs: which kernel, on how many threads, and how the work is cut into
/// depth blocks and tasks. `Gemm.multiply`, the kernels (`GemmDirect`, `GemmPacked`) and the batched driver
/// (`MatmulPlan`) ask these functions and keep no thresholds of their own. The measurements behind each rule are in
/// BENCHMARKS.md ("What is behind the figures" and the runs it cites).
///
/// ```
/// Gemm.multiply(m, n, k, threads)            (m, n >= 1)
///   workers = 1 if m n k < parallelThreshold (3·2^18, about 92^3), else threads
///   kernel  = zero fill if k == 0;  direct if n <= 16 or m <= 8;  packed otherwise
/// direct    tiles 4x16 if m <= 8 and n > 16, else 8x8
///           tasks take row blocks of C, unless the tiles are 4x16 or there are fewer row blocks than both the
///           workers and the column blocks (then column blocks)
///           depth per pass: all of k when A is row-major and m > 8, else chunks of 32 (8x8) or 64 (4x16)
///           tasks: 1 on one worker; else min(units, 4 per worker when a pass covers all of k, 1 per worker if not)
/// packed    depth blocks: depthBlock(k), the fewest of at most 384 steps (256 for the AVX-512 tile), of near-equal size
///           tasks take panels of rows of C if rowPanels >= columnPanels or rowPanels >= 4 workers, else of columns
///           tasks: taskCount(units, workers);  a block of B is packed by min(workers, its panels) workers
/// batched   (MatmulPlan) several products share the threads, each run whole on one, when one product is below
///           parallelThreshold or there are at least two per worker
/// ```
extension Gemm {
    /// Below this many multiply-adds (`m * n * k`) a product runs on one thread whatever `threads` says. The fork-join
    /// runs on `WorkerPool`'s persistent helpers (about 1 µs when they are awake, and the caller takes over any part
    /// a parked helper has not picked up), so only very small products lose; 3·2^18, about 92^3, is where a second
    /// thread starts to pay (BENCHMARKS.md, "What is behind the figures"). The row-parallel loops of other kernels
    /// (a row tail, the Poly kernels) split at the same amount of work.
    public static let parallelThreshold = 3 << 18

    /// The kernels behind `multiply`.
    enum Kernel: Equatable {
        /// `k == 0`: C is zeroed (or left as it is when accumulating).
        case zeroFill
        /// `GemmDirect`: few columns (`n <= 16`, LoRA's `x·A^T` and `x^T·g`) or few rows (`m <= 8`, `g^T·x`), where
        /// packing the big operand would double the memory traffic of a product of low arithmetic intensity.
        case direct
        /// `GemmPacked`: every other shape.
        case packed
    }

    /// The kernel for a product with `m, n >= 1`.
    static func kernel(m: Int, n: Int, k: Int) -> Kernel {
        if k == 0 { return .zeroFill }
        return n <= 16 || m <= 8 ? .direct : .packed
    }

    /// The threads one product uses: one below `parallelThreshold`, else `threads`.
    static func workers(m: Int, n: Int, k: Int, threads: Int) -> Int {
        m * n * k < parallelThreshold ? 1 : threads
    }
}

extension GemmDirect {
    /// Depth of a chunk of k when sweeping, for 8x8 and 4x16 tiles: 32 (resp. 64) rows of B, or of A^T, are read as
    /// that many sequential streams, few enough for the hardware prefetchers. Each is the best depth measured for
    /// its LoRA gradient shape, `x^T·g` and `g^T·x` (BENCHMARKS.md, "What is behind the figures").
    static let kc = 32, kcWide = 64

    /// How the skinny kernel cuts one product: its tile, which side of C its tasks split, how deep a pass over k goes,
    /// and how many tasks there are.
    struct Schedule: Equatable {
        /// 4x16 tiles (few rows of C and many columns: two vector loads of B per step) instead of 8x8.
        let wide: Bool
        /// Tasks take row blocks of C; otherwise column blocks.
        let splitRows: Bool
        /// Steps of k per pass over the tiles: all of k, or a chunk of `kc` (8x8) or `kcWide` (4x16).
        let chunk: Int
        /// Tasks handed out dynamically among the workers (`Parallel.forEach`).
        let tasks: Int

        var tileRows: Int { wide ? 4 : mr }
        var tileCols: Int { wide ? 16 : nr }
    }

    /// The schedule for `C[m, n] = A[m, k] · B[k, n]` on `workers` threads, A's column stride `csA`.
    ///
    /// With row-major A and many rows, each tile runs over the whole of k (A's rows are streamed once). Otherwise
    /// (A transposed, as in `x^T·g`, or few rows of C) the tiles sweep k in chunks of `kc`, so that A and B are read
    /// in order, a chunk at a time, instead of jumping a page per step of p. Tasks are 4 per worker when each streams
    /// whole rows of A, one per worker when k is swept in chunks: smaller tasks cut every row into shorter runs, which
    /// the prefetchers follow less well (BENCHMARKS.md: 4 per worker is slower on `x^T·g` and `g^T·x` with 2
    /// threads).
    static func schedule(m: Int, n: Int, k: Int, csA: Int, workers: Int) -> Schedule {
        let wide = m <= mr && n > 16
        let tm = wide ? 4 : mr, tn = wide ? 16 : nr
        let rowBlocks = (m + tm - 1) / tm, colBlocks = (n + tn - 1) / tn
        let splitRows = !wide && (rowBlocks >= workers || rowBlocks >= colBlocks)
        let units = splitRows ? rowBlocks : colBlocks
        let chunk = m > mr && csA == 1 ? k : (wide ? kcWide : kc)
        let tasks = workers == 1 ? 1 : Swift.min(chunk == k ? 4 * workers : workers, units)
        return Schedule(wide: wide, splitRows: splitRows, chunk: chunk, tasks: tasks)
    }
}

extension GemmPacked {
    /// The deepest block of k the packed kernel takes (see `depthBlock`).
    static let kcMax = 384

    /// The depth of the packed blocks: `k` cut into the fewest blocks of at most `kcMax` (384) steps, all of about the
    /// same size (rounded up to a multiple of 8, the packing's step), so no last block is left with a few steps.
    ///
    /// ```
    /// k:      1...384   385...768   1024   2048   4096
    /// block:  k         ~k/2        344    344    376
    /// ```
    ///
    /// A B micro-panel is `block x 16` floats (22 KiB at 344) and stays in the 32 KiB L1 beside the A micro-panel it
    /// meets (8 KiB); fewer blocks mean fewer read-modify-write passes over C (one per block). Deeper blocks would
    /// fill L1 with the B micro-panel (BENCHMARKS.md, "The depth blocks").
    static func depthBlock(_ k: Int, max limit: Int = GemmPacked.kcMax) -> Int {
        if k <= limit { return Swift.max(k, 1) }
        let blocks = (k + limit - 1) / limit
        return Swift.min(limit, roundUp((k + blocks - 1) / blocks, 8))
    }

    /// Whether the tasks of a depth block take panels of rows of C (else of columns): when C has at least as many
    /// row panels as column panels, or enough row panels for four tasks per worker.
    static func splitsRows(rowPanels: Int, columnPanels: Int, workers: Int) -> Bool {
        rowPanels >= columnPanels || rowPanels >= 4 * workers
    }

    /// How many tasks the panels of a depth block are cut into: about one A block (`mc` rows, 20 panels) each, at
    /// most 4 per worker, and a multiple of the workers, so that workers of equal speed finish together.
    ///
    /// ```
    /// tasks = min(units, roundUp(min(4 * workers, ceil(units / 20)), workers))      (1 with one worker)
    /// 2 workers, square n:   128: 2   256: 4   384: 4   512: 6   1024: 8   2048: 8
    /// ```
    ///
    /// Handed out one at a time (`Parallel.forEach`), so a worker slowed down by another process takes fewer; a
    /// multiple of the workers, so the join never waits for one last task run alone (BENCHMARKS.md, "The task
    /// count", compares the rule with the one it replaced).
    static func taskCount(units: Int, workers: Int, tile: Tile = .base) -> Int {
        if workers <= 1 { return 1 }
        let perBlock = tile.mc / tile.mr
        let blocks = (units + perBlock - 1) / perBlock
        return Swift.min(units, roundUp(Swift.min(4 * workers, blocks), workers))
    }

    /// The workers that pack a block of B: one panel of 16 columns each at least.
    static func packingWorkers(panels: Int, workers: Int) -> Int { Swift.min(workers, panels) }
}

extension MatmulPlan {
    /// How a batch of `count` products of `m x n x k` shares `workers` threads: `outer` threads take whole products
    /// (each on one thread, no hand-off inside it), and each product runs on `inner` threads. The batch is shared when
    /// there are several products and one is too small to share (`Gemm.parallelThreshold`), or there are at least two
    /// per worker (attention's `[B H]` products).
    static func batchSplit(count: Int, m: Int, n: Int, k: Int, workers: Int) -> (outer: Int, inner: Int) {
        let small = m * n * k < Gemm.parallelThreshold
        let outer = count > 1 && (small || count >= 2 * workers) ? Swift.min(workers, count) : 1
        return (outer, outer > 1 ? 1 : workers)
    }
}
