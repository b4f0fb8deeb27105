import Foundation
import PolyPEFT

/// A small argument parser in the style of swift-argument-parser: each subcommand declares its options; the parser
/// accepts `--name value`, `--name=value`, boolean `--flag`, and positionals, rejects anything undeclared, and checks
/// every given value against its option's kind, so a command's `validate()` and `run()` only see well-formed values.

/// One declared option: its name, how help shows it, what values it accepts and its default, each written once.
struct OptionSpec {
    /// What an option accepts.
    enum Kind {
        case flag
        /// Any text.
        case text
        /// A file path: any text but the empty string.
        case path
        case int(ClosedRange<Int>)
        /// A finite number above zero (or zero too).
        case positive(allowZero: Bool)
        case choice([String])
        /// Positive integers separated by commas (`5,20,80`).
        case intList
    }

    /// Long name without dashes (`"steps"`).
    let name: String
    /// Placeholder shown in help for options that take a value (`"<n>"`); nil for boolean flags.
    let value: String?
    /// One-line help.
    let help: String
    let kind: Kind
    /// The value an absent option takes, spelled as on the command line; help shows it as `(default: ...)`.
    let defaultValue: String?
    /// What help shows for a default that is not one value (it depends on another option or on the machine); the
    /// command computes that default itself, from the same constants.
    let defaultNote: String?

    /// The default as help shows it.
    var shownDefault: String? { defaultNote ?? defaultValue }

    private init(_ name: String, _ value: String?, _ help: String, _ kind: Kind, default defaultValue: String?, note: String?) {
        self.name = name
        self.value = value
        self.help = help
        self.kind = kind
        self.defaultValue = defaultValue
        self.defaultNote = note
    }

    static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name, nil, help, .flag, default: nil, note: nil)
    }

    static func text(_ name: String, _ value: String, _ help: String, note: String? = nil) -> OptionSpec {
        OptionSpec(name, value, help, .text, default: nil, note: note)
    }

    static func path(_ name: String, _ value: String, _ help: String) -> OptionSpec {
        OptionSpec(name, value, help, .path, default: nil, note: nil)
    }

    static func int(_ name: String, _ value: String, _ help: String, range: ClosedRange<Int>, default d: Int? = nil,
                    note: String? = nil) -> OptionSpec {
        OptionSpec(name, value, help, .int(range), default: d.map(String.init), note: note)
    }

    /// An integer option shown as `<n>`.
    static func int(_ name: String, _ help: String, range: ClosedRange<Int>, default d: Int? = nil, note: String? = nil) -> OptionSpec {
        int(name, "<n>", help, range: range, default: d, note: note)
    }

    /// A positive number (`<x>`) whose default is a `Float` setting, shown as `Float` prints it (`0.01`, not the
    /// `Double` nearest to that `Float`).
    static func positive(_ name: String, _ help: String, default d: Float) -> OptionSpec {
        OptionSpec(name, "<x>", help, .positive(allowZero: false), default: "\(d)", note: nil)
    }

    /// A positive number (`<x>`) without a fixed default (the command computes it; help shows `note`).
    static func positive(_ name: String, _ help: String, note: String) -> OptionSpec {
        OptionSpec(name, "<x>", help, .positive(allowZero: false), default: nil, note: note)
    }

    /// One of `choices`; the placeholder lists them (`<poly|mhr|lora>`), or, when they would widen the help's option
    /// column past `maxPlaceholder` characters, the help does (`<name>` ... `One of: a, b, c.`).
    static func choice(_ name: String, _ choices: [String], _ help: String, default d: String) -> OptionSpec {
        precondition(choices.contains(d), "OptionSpec: default '\(d)' of '--\(name)' is not one of its choices")
        let listed = "<" + choices.joined(separator: "|") + ">"
        if listed.count <= maxPlaceholder { return OptionSpec(name, listed, help, .choice(choices), default: d, note: nil) }
        return OptionSpec(name, "<\(name)>", help + " One of: " + choices.joined(separator: ", ") + ".", .choice(choices), default: d, note: nil)
    }

    /// The longest placeholder listing choices.
    static let maxPlaceholder = 32

    static func intList(_ name: String, _ value: String, _ help: String, default d: [Int]) -> OptionSpec {
        OptionSpec(name, value, help, .intList, default: d.map(String.init).joined(separator: ","), note: nil)
    }

    /// Checks `text` against the option's kind; a usage error names the option (and `command`'s help).
    func check(_ text: String, command: String) throws {
        let hint = "see 'polyctl \(command) --help'"
        switch kind {
        case .flag, .text:
            return
        case .path:
            guard !text.isEmpty else { throw CLIError.usage("option '--\(name)' needs a file path", hint: hint) }
        case .int(let range):
            guard let v = Int(text) else { throw CLIError.usage("option '--\(name)' expects an integer, got '\(text)'", hint: hint) }
            guard range.contains(v) else {
                throw CLIError.usage("option '--\(name)' must be in \(range.lowerBound)...\(range.upperBound), got \(v)", hint: hint)
            }
        case .positive(let allowZero):
            guard let v = Double(text), v.isFinite, v > 0 || (allowZero && v == 0) else {
                throw CLIError.usage("option '--\(name)' expects a positive number, got '\(text)'", hint: hint)
            }
            // Read as 32-bit floats: a value that overflows or underflows to 0 there is a usage error too.
            guard Float(v).isFinite, Float(v) > 0 || v == 0 else {
                throw CLIError.usage("option '--\(name)' is out of the 32-bit float range, got '\(text)'", hint: hint)
            }
        case .choice(let allowed):
            guard allowed.contains(text) else {
                throw CLIError.usage("option '--\(name)' must be one of \(allowed.joined(separator: ", ")), got '\(text)'", hint: hint)
            }
        case .intList:
            guard OptionSpec.intList(text) != nil else {
                throw CLIError.usage("option '--\(name)' expects positive integers separated by commas, got '\(text)'", hint: hint)
            }
        }
    }

    /// `"5, 20,80"` -> `[5, 20, 80]`; nil unless every part is a positive integer.
    static func intList(_ text: String) -> [Int]? {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return parts.map { $0! }
    }
}

/// Errors that end a command. `usage` exits 64 (EX_USAGE); `runtime` exits 1; `interrupted` exits 128 + the
/// signal (130 for SIGINT and `--stop-after`, 143 for SIGTERM).
enum CLIError: Error, Equatable {
    case usage(String, hint: String)
    case runtime(String)
    /// Stopped by a signal after saving (exit 128 + signal, as shells report it).
    case interrupted(signal: Int32)
}

/// The parsed command line of one subcommand, every given value already checked against its option's kind. The
/// typed accessors return the given value or the option's declared default.
struct ParsedArguments {
    let command: String
    private let specs: [String: OptionSpec]
    private(set) var values: [String: String] = [:]   // option name -> value, as given
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String] = []

    init(command: String, arguments: [String], options: [OptionSpec], maxPositionals: Int) throws {
        self.command = command
        specs = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0) })
        let hint = "see 'polyctl \(command) --help'"
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg.hasPrefix("--") {
                var name = String(arg.dropFirst(2))
                var inline: String?
                if let eq = name.firstIndex(of: "=") {
                    inline = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                guard let spec = specs[name] else { throw CLIError.usage("unknown option '--\(name)'", hint: hint) }
                if spec.value == nil {
                    guard inline == nil else { throw CLIError.usage("option '--\(name)' takes no value", hint: hint) }
                    flags.insert(name)
                } else {
                    let v: String
                    if let inline { v = inline } else {
                        guard i < arguments.count, !arguments[i].hasPrefix("--") else {
                            throw CLIError.usage("option '--\(name)' needs a value \(spec.value!)", hint: hint)
                        }
                        v = arguments[i]
                        i += 1
                    }
                    guard values[name] == nil else { throw CLIError.usage("option '--\(name)' given twice", hint: hint) }
                    try spec.check(v, command: command)
                    values[name] = v
                }
            } else if arg.hasPrefix("-") && arg.count > 1 && Double(arg) == nil {
                throw CLIError.usage("unknown option '\(arg)'", hint: hint)
            } else {
                guard positionals.count < maxPositionals else {
                    throw CLIError.usage("unexpected argument '\(arg)'", hint: hint)
                }
                positionals.append(arg)
            }
        }
    }

    /// The hint of this command's usage errors.
    var hint: String { "see 'polyctl \(command) --help'" }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// Whether the option was given on the command line (not just defaulted).
    func isGiven(_ name: String) -> Bool { values[name] != nil }

    /// The given value, else the declared default, as text.
    func string(_ name: String) -> String? {
        guard let spec = specs[name] else { preconditionFailure("ParsedArguments: '--\(name)' is not an option of '\(command)'") }
        return values[name] ?? spec.defaultValue
    }

    /// An integer option that has a value (given or declared default).
    func int(_ name: String) -> Int {
        guard let v = optionalInt(name) else { preconditionFailure("ParsedArguments: '--\(name)' has no default") }
        return v
    }

    /// An integer option, nil when neither given nor declared with a default.
    func optionalInt(_ name: String) -> Int? { string(name).map { Int($0)! } }

    func double(_ name: String) -> Double {
        guard let s = string(name) else { preconditionFailure("ParsedArguments: '--\(name)' has no default") }
        return Double(s)!
    }

    /// A number option as `Float` (read as `Double` first, as the command line spells it).
    func float(_ name: String) -> Float { Float(double(name)) }

    /// A choice option (given or default).
    func choice(_ name: String) -> String {
        guard let s = string(name) else { preconditionFailure("ParsedArguments: '--\(name)' has no default") }
        return s
    }

    func intList(_ name: String) -> [Int] {
        guard let s = string(name), let list = OptionSpec.intList(s) else { preconditionFailure("ParsedArguments: '--\(name)' has no list") }
        return list
    }
}

/// Options several subcommands share, declared once.
extension OptionSpec {
    /// `--threads`: the kernels' threads, by default `Parallel.defaultThreads` (`ParsedArguments.threads`).
    static let threads = OptionSpec.int("threads", "<t>", "Threads to use.", range: 1...1024, note: "all processors or POLYPEFT_THREADS")

    /// `--mixing`: how Poly mixes its skills.
    static func mixing(default d: MixingMode, _ help: String = "Mix skill parameters (PEFT) or skill outputs.") -> OptionSpec {
        .choice("mixing", MixingMode.allCases.map(\.rawValue), help, default: d.rawValue)
    }

    /// `--strategy`: the routing kernel of Poly layers.
    static let strategy = OptionSpec.choice("strategy", RoutingStrategy.allCases.map(\.rawValue), "Routing kernel.",
                                            default: RoutingStrategy.automatic.rawValue)

    /// `--allow-non-finite`: load adapter weights holding NaN or infinity (refused by default), warning per tensor.
    static let allowNonFinite = OptionSpec.flag("allow-non-finite",
        "Load adapter weights holding NaN or infinity (refused by default), with a warning naming each such tensor.")

    /// `--seed`, 0 by default.
    static func seed(_ help: String) -> OptionSpec { .int("seed", help, range: 0...Int.max, default: 0) }

    /// `--repeat`: timed runs or rounds of a benchmark.
    static func repeats(_ help: String, default d: Int) -> OptionSpec { .int("repeat", "<r>", help, range: 1...10_000, default: d) }

    /// `--dump <file>`: a benchmark's safetensors dump.
    static func dump(_ help: String) -> OptionSpec { .path("dump", "<file>", help) }

    /// `--json` of the benchmarks.
    static let benchJSON = OptionSpec.flag("json", "Print the figures as one JSON object.")
}

extension ParsedArguments {
    /// `--threads`, or `Parallel.defaultThreads` when not given.
    var threads: Int { optionalInt("threads") ?? Parallel.defaultThreads }

    var mixing: MixingMode { MixingMode(rawValue: choice("mixing"))! }

    /// `--method` of `polyctl train`.
    var method: RunMethod { RunMethod(rawValue: choice("method"))! }

    var strategy: RoutingStrategy { RoutingStrategy(rawValue: choice("strategy"))! }
}
