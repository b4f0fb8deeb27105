import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Validated per-sample task ids and their distinct values.
///
/// Unlike PEFT, which silently wraps negative ids (Python indexing) and checks only the maximum, every id must lie in
/// `0..<nTasks`; with `allowsUnknown`, `TaskTable.unknownID` (-1) is accepted too (routed uniformly by the router).
struct TaskBatch {
    let ids: [Int]
    /// Distinct ids in order of first appearance.
    let distinct: [Int]
    /// For each sample, the index of its id in `distinct`.
    let groupOfSample: [Int]

    init(_ taskIDs: [Int]?, batch: Int, nTasks: Int, layer: String, allowsUnknown: Bool = false) throws {
        guard let taskIDs else {
            throw PolyError("\(layer): task ids are required (set Context.taskIDs, one per sample)")
        }
        guard taskIDs.count == batch else {
            throw PolyError("\(layer): \(taskIDs.count) task ids for a batch of \(batch) samples")
        }
        var index = [Int](repeating: -1, count: nTasks + 1)        // index[id + 1]: the group of id (-1: none yet)
        var distinct: [Int] = []
        var failure: (sample: Int, id: Int)?
        let groups = [Int](unsafeUninitializedCapacity: batch) { out, count in
            for i in 0..<batch {
                let id = taskIDs[i]
                guard UInt(bitPattern: id) < UInt(nTasks) || (allowsUnknown && id == TaskTable.unknownID) else {
                    failure = (i, id)
                    count = i
                    return
                }
                var g = index[id + 1]
                if g < 0 {
                    g = distinct.count
                    index[id + 1] = g
                    distinct.append(id)
                }
                out[i] = g
            }
            count = batch
        }
        if let failure {
            throw PolyError("\(layer): task id \(failure.id) of sample \(failure.sample) is out of range 0..<\(nTasks)")
        }
        ids = taskIDs
        self.distinct = distinct
        groupOfSample = groups
    }
}
