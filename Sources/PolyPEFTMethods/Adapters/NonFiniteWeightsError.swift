import PolyPEFTCore

/// Adapter weights holding a NaN or infinity, refused on loading (`PeftModel.loadAdapterTensors(_:allowNonFinite:)`
/// accepts them on request). A type of its own, so a tool can say how its users allow them.
public struct NonFiniteWeightsError: PolyPEFTError, Equatable {
    public let source: String
    public let key: String
    /// `"tensor 'k' holds nan at flat index 3; non-finite weights are refused"`.
    public let message: String

    public var description: String { "\(source): \(message)" }

    /// Throws when `tensor` holds a NaN or infinity, naming `key` and `source`.
    public static func check(_ tensor: Tensor, key: String, source: String) throws {
        guard let note = tensor.nonFiniteNote() else { return }
        throw NonFiniteWeightsError(source: source, key: key, message: "tensor '\(key)' \(note); non-finite weights are refused")
    }
}
