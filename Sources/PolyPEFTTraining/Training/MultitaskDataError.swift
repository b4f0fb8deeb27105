import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// An error in multitask data: a data file, a dataset's shapes, or a synthetic-data configuration.
///
/// The description names the file and 1-based line when known, in the compiler style
/// `data.jsonl:17: "input" has 31 values, expected 32`.
public struct MultitaskDataError: PolyPEFTError, Equatable {
    /// The file the problem is in (its path as given), if any.
    public let file: String?
    /// The 1-based line (for CSV, the line a record starts on), if any.
    public let line: Int?
    /// What is wrong.
    public let message: String

    public init(file: String? = nil, line: Int? = nil, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        switch (file, line) {
        case let (f?, l?): return "\(f):\(l): \(message)"
        case let (f?, nil): return "\(f): \(message)"
        case let (nil, l?): return "line \(l): \(message)"
        case (nil, nil): return message
        }
    }
}
