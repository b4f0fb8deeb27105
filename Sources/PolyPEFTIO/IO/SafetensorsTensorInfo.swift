import PolyPEFTCore

/// One tensor's entry in a safetensors header, validated.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    /// Element type.
    public let dtype: SafetensorsDType
    /// Extents, row-major.
    public let shape: [Int]
    /// Byte range inside the data section (which starts after the 8-byte length and the header).
    public let dataOffsets: Range<Int>
    /// Number of elements (product of `shape`, 1 for a scalar).
    public let elementCount: Int
}
