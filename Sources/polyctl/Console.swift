import Foundation

/// Where a command writes. The real program writes to the process's stdout/stderr; tests capture both as strings.
final class Console {
    private(set) var stdout = ""
    private(set) var stderr = ""
    /// When false (tests), output is only captured.
    let passthrough: Bool
    /// True when stdout is a terminal (updating progress lines, colours); false when piped or captured.
    let isTerminal: Bool

    init(passthrough: Bool, isTerminal: Bool = false) {
        self.passthrough = passthrough
        self.isTerminal = isTerminal
    }

    /// The console of the running process.
    static func process() -> Console {
        Console(passthrough: true, isTerminal: isatty(STDOUT_FILENO) == 1)
    }

    /// Writes `text` followed by a newline to standard output.
    func print(_ text: String = "") { write(text + "\n") }

    /// Writes `text` as is to standard output.
    func write(_ text: String) {
        if passthrough { FileHandle.standardOutput.write(Data(text.utf8)) } else { stdout += text }
    }

    /// Writes `text` followed by a newline to standard error.
    func error(_ text: String) {
        if passthrough { FileHandle.standardError.write(Data((text + "\n").utf8)) } else { stderr += text + "\n" }
    }
}
