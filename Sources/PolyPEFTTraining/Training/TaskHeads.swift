import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// One classification head per task, packed into one classifier: task t predicts only over its own outputs, so
/// tasks whose labels share names ("yes" in two tasks) keep apart, and a task never predicts another's label.
///
/// ```
/// outputs   [ task 0's labels | task 1's labels | ... ]        one classifier, sum of the tasks' label counts
/// logits    logits + mask[task]: 0 on the task's outputs, -1e9 elsewhere (softmax and argmax within the head)
/// ```
/// Saved with a run as `labels` (per task, its label names); in PyTorch, the logits of task t are the slice
/// `offsets[t] ..< offsets[t] + labels[t].count` of the classifier's output.
public struct TaskHeads: Codable, Equatable, Sendable {
    /// Per task, the names of its labels, in output order.
    public var labels: [[String]]

    public init(labels: [[String]]) { self.labels = labels }

    /// The heads of `data`: each task's labels in order of first appearance in it.
    public init(_ data: TextClassificationData) {
        var labels = [[String]](repeating: [], count: data.taskNames.count)
        var seen = Set<[Int]>()
        for s in data.samples where seen.insert([s.taskID, s.labelID]).inserted {
            labels[s.taskID].append(data.labelNames[s.labelID])
        }
        self.labels = labels
    }

    /// The classifier's outputs: every head's labels, in task order.
    public var outputCount: Int { labels.reduce(0) { $0 + $1.count } }

    /// The first output of each task's head.
    public var offsets: [Int] {
        var o = 0
        return labels.map { l in defer { o += l.count }; return o }
    }

    /// The output of label `name` in task `task`'s head, if it has one.
    public func output(task: Int, label name: String) -> Int? {
        labels[task].firstIndex(of: name).map { offsets[task] + $0 }
    }

    /// The task owning each output, and its label name.
    public var outputNames: [(task: Int, label: String)] {
        labels.enumerated().flatMap { t, names in names.map { (t, $0) } }
    }

    /// `data` with each sample's label replaced by its output; a task-label pair no head has is an error naming
    /// the sample.
    public func relabel(_ data: TextClassificationData, source: String) throws -> TextClassificationData {
        guard data.taskNames.count == labels.count else {
            throw ConfigError("\(source): \(data.taskNames.count) tasks, but the heads are for \(labels.count)")
        }
        var out = data
        out.labelNames = outputNames.map(\.label)
        for i in out.samples.indices {
            let s = data.samples[i], name = data.labelNames[s.labelID]
            guard let o = output(task: s.taskID, label: name) else {
                throw ConfigError("\(source): sample \(i + 1): task '\(data.taskNames[s.taskID])' was not trained on "
                    + "label '\(name)' (its labels: \(namesPreview(labels[s.taskID])))")
            }
            out.samples[i].labelID = o
        }
        return out
    }

    /// The additive logit mask of a batch `[B, outputs]`: 0 on each sample's task's outputs, -1e9 elsewhere.
    public func mask(tasks: [Int]) -> Tensor {
        let width = outputCount, starts = offsets
        var m = [Float](repeating: -1e9, count: tasks.count * width)
        for (i, t) in tasks.enumerated() {
            for j in starts[t]..<(starts[t] + labels[t].count) { m[i * width + j] = 0 }
        }
        return Tensor(m, shape: [tasks.count, width])
    }

    /// Checks what a saved file could get wrong: names per task, none empty or repeated.
    public func validate(taskCount: Int, source: String) throws {
        guard labels.count == taskCount else {
            throw ConfigError("\(source): heads for \(labels.count) tasks, but the run has \(taskCount)")
        }
        for (t, names) in labels.enumerated() {
            guard !names.isEmpty else { throw ConfigError("\(source): the head of task \(t) has no labels") }
            guard Set(names).count == names.count else { throw ConfigError("\(source): the head of task \(t) repeats a label") }
        }
    }
}
