import Foundation
import PolyPEFT

/// The `polyctl` executable: dispatches to subcommands, maps errors to exit codes.
@main
struct PolyCtl {
    static let version = "0.1.0"

    /// Every top-level subcommand, in help order. Nested groups (`bench`) dispatch on their own next word.
    static var groups: [(name: String, overview: String, commands: [any Subcommand.Type])] { [
        ("train", TrainCommand.overview, [TrainCommand.self]),
        ("eval", EvalCommand.overview, [EvalCommand.self]),
        ("infer", InferCommand.overview, [InferCommand.self]),
        ("inspect", InspectCommand.overview, [InspectCommand.self]),
        ("export", ExportCommand.overview, [ExportCommand.self]),
        ("experiment", "Reproduce the research experiments on the built-in data.", [ExperimentRecovery.self, ExperimentFewShot.self]),
        ("bench", "Measure kernels and layers.", [BenchPeak.self, BenchMatmul.self, BenchLayer.self, BenchTrain.self, BenchInfer.self, BenchT5.self, BenchBert.self]),
    ] }

    static var help: String {
        var lines = ["OVERVIEW: Train, route, inspect and export Poly / MHR adapters (PolyPEFT \(version)).", "",
                     "USAGE: polyctl <subcommand> [options]", "", "OPTIONS:"]
        lines += HelpFormatter.optionLines([.flag("version", "Show the version."), .flag("help", "Show help information.")])
        lines += ["", "SUBCOMMANDS:"]
        lines += HelpFormatter.commandLines(groups.map { ($0.name, $0.overview) })
        lines += ["", "  See 'polyctl <subcommand> --help' for detailed help."]
        return lines.joined(separator: "\n") + "\n"
    }

    static func main() {
        // Training and benchmarks allocate large tensors over and over: keep freed blocks for reuse (MallocTuning).
        MallocTuning.keepLargeBlocks()
        let code = run(Array(CommandLine.arguments.dropFirst()), console: .process())
        exit(code)
    }

    /// Runs `polyctl` with `arguments` (without the program name); returns the exit code. Used in-process by tests.
    static func run(_ arguments: [String], console: Console) -> Int32 {
        do {
            try dispatch(arguments, console)
            return 0
        } catch let CLIError.usage(message, hint) {
            console.error("error: \(message)\nhint: \(hint)")
            return 64
        } catch let CLIError.runtime(message) {
            console.error("error: \(message)")
            return 1
        } catch let CLIError.interrupted(signal) {
            return 128 + signal
        } catch let e as NonFiniteWeightsError {
            console.error("error: \(e) ('--allow-non-finite' loads them, with a warning)")
            return 1
        } catch {
            console.error("error: \(error)")
            return 1
        }
    }

    static func dispatch(_ arguments: [String], _ console: Console) throws {
        guard let first = arguments.first else {
            console.write(help)
            return
        }
        if first == "--help" || first == "-h" || first == "help" { console.write(help); return }
        if first == "--version" { console.print(version); return }
        guard let group = groups.first(where: { $0.name == first }) else {
            throw CLIError.usage("unknown subcommand '\(first)'", hint: "see 'polyctl --help'")
        }
        var rest = Array(arguments.dropFirst())
        let command: any Subcommand.Type
        if group.commands.count == 1 && group.commands[0].name == group.name {
            command = group.commands[0]
        } else {
            // A group: the next word names the command.
            guard let word = rest.first, !word.hasPrefix("-") else {
                if rest.first == "--help" || rest.isEmpty { console.write(groupHelp(group)); return }
                throw CLIError.usage("'polyctl \(group.name)' needs a subcommand", hint: "see 'polyctl \(group.name) --help'")
            }
            guard let c = group.commands.first(where: { $0.name == "\(group.name) \(word)" }) else {
                throw CLIError.usage("unknown subcommand '\(group.name) \(word)'", hint: "see 'polyctl \(group.name) --help'")
            }
            command = c
            rest.removeFirst()
        }
        if helpRequested(rest, options: command.options) { console.write(command.help); return }
        let parsed = try ParsedArguments(command: command.name, arguments: rest, options: command.options,
                                         maxPositionals: command.maxPositionals)
        try command.validate(parsed)
        try command.run(parsed, console)
    }

    /// Whether `--help` / `-h` stands as an option of its own (not as the value of an option that takes one:
    /// `--output --help` is a usage error from the parser, not a request for help).
    static func helpRequested(_ arguments: [String], options: [OptionSpec]) -> Bool {
        let takesValue = Set(options.filter { $0.value != nil }.map(\.name))
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--help" || arg == "-h" { return true }
            if arg.hasPrefix("--"), !arg.contains("="), takesValue.contains(String(arg.dropFirst(2))) { i += 1 }
            i += 1
        }
        return false
    }

    static func groupHelp(_ group: (name: String, overview: String, commands: [any Subcommand.Type])) -> String {
        var lines = ["OVERVIEW: \(group.overview)", "", "USAGE: polyctl \(group.name) <subcommand> [options]", "",
                     "SUBCOMMANDS:"]
        lines += HelpFormatter.commandLines(group.commands.map { (String($0.name.split(separator: " ").last!), $0.overview) })
        return lines.joined(separator: "\n") + "\n"
    }
}
