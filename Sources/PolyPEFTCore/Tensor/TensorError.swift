/// An error raised by a tensor operation whose operands do not fit together.
///
/// The message always names the operation and the shapes involved, e.g.
/// `add: shapes [2, 3] and [4] cannot be broadcast together`.
public struct TensorError: PolyPEFTError, Equatable {
    /// The operation that failed (`"add"`, `"matmul"`, `"reshape"`, ...).
    public let operation: String
    /// What went wrong, naming the shapes or indices involved.
    public let message: String

    public init(_ operation: String, _ message: String) {
        self.operation = operation
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }
}

/// Formats a shape the way error messages print it: `[2, 3, 4]`.
package func fmt(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
