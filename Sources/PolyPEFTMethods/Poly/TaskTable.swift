import Foundation
import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The names of a multitask adapter's tasks, in id order: name `names[i]` is task id `i` (the row of every router's
/// `module_logits`). Names are unique and non-empty.
///
/// Saved next to an adapter as `polypeft_tasks.json` (PEFT ignores the file):
/// ```
/// {
///   "format": "polypeft-task-table",
///   "tasks": [
///     "cola",
///     "sst2"
///   ],
///   "version": 1
/// }
/// ```
public struct TaskTable: Equatable, Sendable {
    /// Task names in id order.
    public private(set) var names: [String]
    private var index: [String: Int]

    /// The id that stands for "a task this adapter has never seen": routed uniformly when the layers' routing
    /// options allow it (`UnknownTaskPolicy.uniform`), an error otherwise.
    public static let unknownID = -1
    public static let fileName = "polypeft_tasks.json"
    static let formatName = "polypeft-task-table"

    public init(_ names: [String]) throws {
        self.names = []
        index = [:]
        for n in names { try append(n) }
    }

    /// `task0`, `task1`, ... for adapters saved without names.
    public static func numbered(_ count: Int) -> TaskTable {
        try! TaskTable((0..<Swift.max(count, 0)).map { "task\($0)" })
    }

    public var count: Int { names.count }

    /// Adds a task at the end and returns its id.
    @discardableResult
    public mutating func append(_ name: String) throws -> Int {
        guard !name.isEmpty else { throw PolyError("task table: a task name must not be empty") }
        guard index[name] == nil else { throw PolyError("task table: duplicate task name '\(name)'") }
        index[name] = names.count
        names.append(name)
        return names.count - 1
    }

    /// The id of `name`; an unknown name is an error listing the known ones.
    public func id(of name: String) throws -> Int {
        guard let i = index[name] else { throw PolyError("unknown task '\(name)' (known tasks: \(summary))") }
        return i
    }

    /// Ids for per-sample task names. With `unknown == .uniform`, names not in the table map to `unknownID`.
    public func ids(for taskNames: [String], unknown: UnknownTaskPolicy = .error) throws -> [Int] {
        try taskNames.map { name in
            if let i = index[name] { return i }
            if unknown == .uniform { return TaskTable.unknownID }
            throw PolyError("unknown task '\(name)' (known tasks: \(summary))")
        }
    }

    /// The name of task `id`.
    public func name(of id: Int) throws -> String {
        guard id >= 0 && id < names.count else { throw PolyError("task id \(id) is out of range 0..<\(names.count)") }
        return names[id]
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// Up to 10 names for messages.
    var summary: String {
        let shown = names.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
        return names.count > 10 ? shown + ", ... (\(names.count) in all)" : (names.isEmpty ? "none" : shown)
    }

    // MARK: File

    public var json: JSONValue {
        ["format": .string(TaskTable.formatName), "version": 1, "tasks": .array(names.map { .string($0) })]
    }

    public init(json: JSONValue, context: String = TaskTable.fileName) throws {
        let f = try JSONObjectReader(json, context: context)
        guard try f.string("format") == TaskTable.formatName else {
            throw PolyError("\(context): not a task table ('format' must be \"\(TaskTable.formatName)\")")
        }
        let v = try f.int("version", default: 1)
        guard v == 1 else { throw PolyError("\(context): unsupported task table version \(v) (this build reads version 1)") }
        guard let list = try f.strings("tasks") else { throw PolyError("\(context): missing 'tasks' (a list of task names)") }
        do { try self.init(list) } catch let e as PolyError { throw PolyError("\(context): \(e.message)") }
    }

    /// Writes `polypeft_tasks.json` into `directory` atomically (the directory must exist).
    public func write(to directory: URL) throws {
        try AtomicFile.write(json.pythonStyleString(indent: 2, sortKeys: true), to: directory.appendingPathComponent(TaskTable.fileName))
    }

    /// Reads `polypeft_tasks.json` from `directory`.
    public static func read(from directory: URL) throws -> TaskTable {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FileFormatError(path: url.path, "missing \(fileName): the adapter was saved without task names")
        }
        return try TaskTable(json: try PeftAdapterFolder.readJSONObject(at: url), context: url.path)
    }
}

extension PeftModel {
    /// Number of tasks the adapter routes by: a Poly adapter's, task-routed gates' (`polypeft_task_gates`), or a
    /// union's parts' (they agree); 0 for other adapters.
    public var taskCount: Int { Self.taskCount(of: config) }

    static func taskCount(of config: any PeftConfig) -> Int {
        if let c = config as? PolyConfig { return c.nTasks }
        if let u = config as? ConfigUnion { return u.configs.map(taskCount(of:)).max() ?? 0 }
        if let g = config as? any GateableConfig, g.useGating, let n = g.taskGates { return n }
        return 0
    }

    /// Saves the adapter as `save(to:adapterName:)` does, plus `polypeft_tasks.json` beside it.
    public func save(to directory: URL, tasks: TaskTable, adapterName: String = PeftAdapterFolder.defaultAdapterName) throws {
        guard tasks.count == taskCount else {
            throw PolyError("save: the task table names \(tasks.count) tasks, the adapter has \(taskCount)")
        }
        try save(to: directory, adapterName: adapterName)
        try tasks.write(to: PeftAdapterFolder.folder(for: adapterName, in: directory))
    }
}
