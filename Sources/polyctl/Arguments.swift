/// A small argument parser in the style of swift-argument-parser: each subcommand declares its options; the parser
/// accepts `--name value`, `--name=value`, boolean `--flag`, and positionals, and rejects anything undeclared.

/// One declared option.
struct OptionSpec {
    /// Long name without dashes (`"steps"`).
    let name: String
    /// Placeholder shown in help for options that take a value (`"<n>"`); nil for boolean flags.
    let value: String?
    /// One-line help.
    let help: String
    /// Default shown in help, if any.
    let defaultValue: String?

    init(_ name: String, _ value: String? = nil, _ help: String, default defaultValue: String? = nil) {
        self.name = name
        self.value = value
        self.help = help
        self.defaultValue = defaultValue
    }
}

/// Errors that end a command. `usage` exits 64 (EX_USAGE); `runtime` exits 1; `interrupted` exits 130.
enum CLIError: Error, Equatable {
    case usage(String, hint: String)
    case runtime(String)
    /// Stopped by Ctrl-C after saving (exit 130, as shells report SIGINT).
    case interrupted
}

/// The parsed command line of one subcommand.
struct ParsedArguments {
    let command: String
    private(set) var values: [String: String] = [:]   // option name -> value
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String] = []

    init(command: String, arguments: [String], options: [OptionSpec], maxPositionals: Int) throws {
        self.command = command
        let byName = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0) })
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
                guard let spec = byName[name] else { throw CLIError.usage("unknown option '--\(name)'", hint: hint) }
                if spec.value == nil {
                    guard inline == nil else { throw CLIError.usage("option '--\(name)' takes no value", hint: hint) }
                    flags.insert(name)
                } else {
                    let v: String
                    if let inline { v = inline } else {
                        guard i < arguments.count else { throw CLIError.usage("option '--\(name)' needs a value \(spec.value!)", hint: hint) }
                        v = arguments[i]
                        i += 1
                    }
                    guard values[name] == nil else { throw CLIError.usage("option '--\(name)' given twice", hint: hint) }
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

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func string(_ name: String) -> String? { values[name] }

    func string(_ name: String, default d: String) -> String { values[name] ?? d }

    /// An integer option, checked against an inclusive range.
    func int(_ name: String, default d: Int, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let s = values[name] else { return d }
        guard let v = Int(s) else { throw CLIError.usage("option '--\(name)' expects an integer, got '\(s)'", hint: "see 'polyctl \(command) --help'") }
        guard range.contains(v) else {
            throw CLIError.usage("option '--\(name)' must be in \(range.lowerBound)...\(range.upperBound), got \(v)", hint: "see 'polyctl \(command) --help'")
        }
        return v
    }

    /// A floating-point option that must be finite and positive unless `allowZero`.
    func double(_ name: String, default d: Double, allowZero: Bool = false) throws -> Double {
        guard let s = values[name] else { return d }
        guard let v = Double(s), v.isFinite, v > 0 || (allowZero && v == 0) else {
            throw CLIError.usage("option '--\(name)' expects a positive number, got '\(s)'", hint: "see 'polyctl \(command) --help'")
        }
        return v
    }

    /// An option restricted to a set of words.
    func choice(_ name: String, _ allowed: [String], default d: String) throws -> String {
        let v = values[name] ?? d
        guard allowed.contains(v) else {
            throw CLIError.usage("option '--\(name)' must be one of \(allowed.joined(separator: ", ")), got '\(v)'", hint: "see 'polyctl \(command) --help'")
        }
        return v
    }
}
