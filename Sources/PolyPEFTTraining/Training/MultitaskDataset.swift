import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Samples from several tasks: regression inputs, targets, and the task each sample belongs to.
///
/// ```
/// inputs:  [N, in]     targets: [N, out]     taskIDs: [N], each in 0..<taskNames.count
/// ```
/// `taskNames` is the id -> name table; it may name tasks that have no samples in this dataset (a split keeps the
/// table of the whole data so ids stay comparable across splits).
public struct MultitaskDataset: Sendable, Equatable {
    /// Inputs, one row per sample. // [N, in]
    public let inputs: Tensor
    /// Regression targets, one row per sample. // [N, out]
    public let targets: Tensor
    /// The task id of each sample. // [N]
    public let taskIDs: [Int]
    /// Task names indexed by task id.
    public let taskNames: [String]

    /// Checks that the pieces fit together and throws `MultitaskDataError` naming the mismatch.
    public init(inputs: Tensor, targets: Tensor, taskIDs: [Int], taskNames: [String]) throws {
        guard inputs.rank == 2, targets.rank == 2 else {
            throw MultitaskDataError("inputs \(fmt(inputs.shape)) and targets \(fmt(targets.shape)) must both be [N, width]")
        }
        guard inputs.shape[0] == targets.shape[0], inputs.shape[0] == taskIDs.count else {
            throw MultitaskDataError("inputs have \(inputs.shape[0]) rows, targets \(targets.shape[0]), task ids \(taskIDs.count)")
        }
        if let bad = taskIDs.firstIndex(where: { $0 < 0 || $0 >= taskNames.count }) {
            throw MultitaskDataError("sample \(bad) has task id \(taskIDs[bad]), but only \(taskNames.count) task names")
        }
        if let dup = MultitaskDataset.firstDuplicate(taskNames) {
            throw MultitaskDataError("task name \"\(dup)\" appears twice in the name table")
        }
        self.init(unchecked: inputs, targets: targets, taskIDs: taskIDs, taskNames: taskNames)
    }

    /// Internal initialiser for pieces already known to be consistent.
    init(unchecked inputs: Tensor, targets: Tensor, taskIDs: [Int], taskNames: [String]) {
        self.inputs = inputs.contiguous()
        self.targets = targets.contiguous()
        self.taskIDs = taskIDs
        self.taskNames = taskNames
    }

    /// Number of samples N.
    public var count: Int { taskIDs.count }
    /// Width of one input row.
    public var inputDim: Int { inputs.shape[1] }
    /// Width of one target row.
    public var targetDim: Int { targets.shape[1] }

    /// The distinct task ids that have at least one sample, ascending.
    public var tasks: [Int] { Array(Set(taskIDs)).sorted() }

    /// Sample indices of every task present, ascending within each task.
    public var indicesByTask: [Int: [Int]] {
        var out: [Int: [Int]] = [:]
        for (i, t) in taskIDs.enumerated() { out[t, default: []].append(i) }
        return out
    }

    /// Sample indices of task `id`, ascending (empty when the task has no samples).
    public func indices(ofTask id: Int) -> [Int] {
        taskIDs.indices.filter { taskIDs[$0] == id }
    }

    /// Input row `i`. // [in]
    public func input(at i: Int) -> [Float] { row(inputs, i) }
    /// Target row `i`. // [out]
    public func target(at i: Int) -> [Float] { row(targets, i) }

    private func row(_ t: Tensor, _ i: Int) -> [Float] {
        precondition(i >= 0 && i < count, "MultitaskDataset: sample \(i) out of range 0..<\(count)")
        let w = t.shape[1]
        return Array(t.storage[(t.offset + i * w)..<(t.offset + (i + 1) * w)])
    }

    /// The samples at `indices`, in that order (repeats allowed); the task name table is kept.
    public func subset(_ indices: [Int]) -> MultitaskDataset {
        let din = inputDim, dout = targetDim
        for i in indices { precondition(i >= 0 && i < count, "MultitaskDataset: sample \(i) out of range 0..<\(count)") }
        // Row copies straight from the contiguous storage (inputs and targets are made contiguous at init).
        func gather(_ t: Tensor, _ w: Int) -> [Float] {
            [Float](unsafeUninitializedCapacity: indices.count * w) { out, done in
                guard indices.count * w > 0 else { done = 0; return }
                t.storage.withUnsafeBufferPointer { src in
                    for (r, i) in indices.enumerated() {
                        (out.baseAddress! + r * w).initialize(from: src.baseAddress! + t.offset + i * w, count: w)
                    }
                }
                done = indices.count * w
            }
        }
        let x = gather(inputs, din), y = gather(targets, dout)
        return MultitaskDataset(unchecked: Tensor(x, shape: [indices.count, din]),
                                targets: Tensor(y, shape: [indices.count, dout]),
                                taskIDs: indices.map { taskIDs[$0] }, taskNames: taskNames)
    }

    /// Splits a seeded random permutation of `0..<count` into batches of `size` sample indices.
    ///
    /// The permutation is a Fisher-Yates shuffle driven by `rng` (implemented here, so the order depends only on the
    /// generator's stream, not on the standard library version). The last batch is shorter when `size` does not
    /// divide `count`, unless `dropLast` drops it.
    public func batches(size: Int, dropLast: Bool = false, using rng: inout some RandomNumberGenerator) -> [[Int]] {
        precondition(size > 0, "MultitaskDataset.batches: size must be positive")
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        var out: [[Int]] = []
        var start = 0
        while start < count {
            let end = Swift.min(start + size, count)
            if end - start == size || !dropLast { out.append(Array(order[start..<end])) }
            start = end
        }
        return out
    }

    /// Concatenates datasets sharing one task name table and widths (e.g. the splits of one data set).
    public static func concatenating(_ parts: [MultitaskDataset]) throws -> MultitaskDataset {
        guard let first = parts.first else { throw MultitaskDataError("cannot concatenate zero datasets") }
        for p in parts.dropFirst() {
            guard p.taskNames == first.taskNames else { throw MultitaskDataError("cannot concatenate datasets with different task tables") }
            guard p.inputDim == first.inputDim, p.targetDim == first.targetDim else {
                throw MultitaskDataError("cannot concatenate widths \(p.inputDim)->\(p.targetDim) and \(first.inputDim)->\(first.targetDim)")
            }
        }
        let n = parts.reduce(0) { $0 + $1.count }
        return MultitaskDataset(unchecked: Tensor(parts.flatMap { $0.inputs.scalars }, shape: [n, first.inputDim]),
                                targets: Tensor(parts.flatMap { $0.targets.scalars }, shape: [n, first.targetDim]),
                                taskIDs: parts.flatMap(\.taskIDs), taskNames: first.taskNames)
    }

    static func firstDuplicate(_ names: [String]) -> String? {
        var seen = Set<String>()
        for n in names where !seen.insert(n).inserted { return n }
        return nil
    }
}
