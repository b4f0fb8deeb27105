/// One `polyctl` subcommand: its help text, its options, and what it does.
///
/// The dispatcher parses the command line against `options` (every value checked against its option's kind), then
/// calls `validate` and only then `run`, so a usage error (exit 64) is reported before any work starts.
protocol Subcommand {
    /// The word after `polyctl` (`"train"`); a nested subcommand's is its path (`"bench matmul"`).
    static var name: String { get }
    /// One sentence for OVERVIEW and the subcommand list.
    static var overview: String { get }
    /// The USAGE line after `polyctl `.
    static var usage: String { get }
    /// Declared options; `--help` is added by the dispatcher.
    static var options: [OptionSpec] { get }
    /// How many positional arguments are accepted.
    static var maxPositionals: Int { get }
    /// Checks what the options' kinds cannot: required options, combinations, sizes. Throws `CLIError.usage`;
    /// reads no file and does no work.
    static func validate(_ args: ParsedArguments) throws
    /// Runs with validated arguments, writing to `console`. Throws `CLIError` for runtime failures (and for usage
    /// errors that depend on a file it reads).
    static func run(_ args: ParsedArguments, _ console: Console) throws
}

extension Subcommand {
    static var maxPositionals: Int { 0 }

    /// The `--help` text: OVERVIEW / USAGE / OPTIONS.
    static var help: String {
        var lines = ["OVERVIEW: \(overview)", "", "USAGE: polyctl \(usage)", "", "OPTIONS:"]
        lines += HelpFormatter.optionLines(options + [.flag("help", "Show help information.")])
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Formats option tables in two aligned columns.
enum HelpFormatter {
    static func optionLines(_ options: [OptionSpec]) -> [String] {
        let heads = options.map { "--\($0.name)" + ($0.value.map { " \($0)" } ?? "") }
        let width = (heads.map(\.count).max() ?? 0) + 2
        return zip(heads, options).map { head, o in
            let pad = String(repeating: " ", count: width - head.count)
            let d = o.shownDefault.map { " (default: \($0))" } ?? ""
            return "  \(head)\(pad)\(o.help)\(d)"
        }
    }

    static func commandLines(_ commands: [(String, String)]) -> [String] {
        let width = (commands.map(\.0.count).max() ?? 0) + 2
        return commands.map { "  \($0.0)\(String(repeating: " ", count: width - $0.0.count))\($0.1)" }
    }
}
