import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Maximal runs of consecutive rows sharing a group, and the runs of each group.
struct RowRuns {
    struct Run { let group: Int, start: Int, count: Int }
    let runs: [Run]
    let byGroup: [[Run]]

    /// The number of runs, without building them.
    static func count(_ rowGroups: [Int]) -> Int {
        var n = rowGroups.isEmpty ? 0 : 1
        for i in rowGroups.indices.dropFirst() where rowGroups[i] != rowGroups[i - 1] { n += 1 }
        return n
    }

    init(rowGroups: [Int], groupCount: Int) {
        var runs: [Run] = []
        var start = 0
        while start < rowGroups.count {
            var end = start + 1
            while end < rowGroups.count && rowGroups[end] == rowGroups[start] { end += 1 }
            runs.append(Run(group: rowGroups[start], start: start, count: end - start))
            start = end
        }
        var by = [[Run]](repeating: [], count: groupCount)
        for r in runs { by[r.group].append(r) }
        self.runs = runs
        byGroup = by.filter { !$0.isEmpty }
    }

    /// Calls `body(run, innerThreads)` for every run: runs shared among `threads` workers when there are at least
    /// two per worker, else one after another with the threads inside each product. Runs write disjoint rows.
    func forEachRun(threads: Int, _ body: (Run, Int) -> Void) {
        if threads > 1 && runs.count >= 2 * threads {
            Parallel.forEach(tasks: runs.count, workers: threads) { t, _ in body(runs[t], 1) }
        } else {
            for r in runs { body(r, threads) }
        }
    }

    /// Calls `body(runsOfGroup, innerThreads)` for every non-empty group, shared among workers likewise.
    func forEachGroup(threads: Int, _ body: ([Run], Int) -> Void) {
        if threads > 1 && byGroup.count >= 2 * threads {
            Parallel.forEach(tasks: byGroup.count, workers: threads) { t, _ in body(byGroup[t], 1) }
        } else {
            for g in byGroup { body(g, threads) }
        }
    }
}
