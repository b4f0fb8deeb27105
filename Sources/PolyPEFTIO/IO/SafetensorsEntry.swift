import Foundation
import PolyPEFTCore

/// One tensor to write: dtype, shape and its little-endian bytes, checked to agree. Invalid entries throw
/// `FileFormatError` with `path == "safetensors entry"`.
public struct SafetensorsEntry: Sendable, Equatable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let bytes: Data

    /// An entry from raw bytes; throws when `bytes.count != product(shape) * dtype.byteSize`.
    public init(dtype: SafetensorsDType, shape: [Int], bytes: Data) throws {
        guard let n = Tensor.checkedElementCount(shape), case let (size, false) = n.multipliedReportingOverflow(by: dtype.byteSize),
              size == bytes.count else {
            throw FileFormatError(path: "safetensors entry", "\(bytes.count) bytes do not hold \(dtype.rawValue) \(fmt(shape))")
        }
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A floating-point tensor stored as `dtype` (F32 by default; F16/BF16 round to nearest even).
    public static func float(_ tensor: Tensor, as dtype: SafetensorsDType = .F32) throws -> SafetensorsEntry {
        guard dtype.isFloatingPoint else {
            throw FileFormatError(path: "safetensors entry", "cannot store a Float tensor as \(dtype.rawValue); use .int(_:shape:as:)")
        }
        let bytes = tensor.withContiguousBuffer { SafetensorsConversion.encode(floats: $0, as: dtype) }
        return try SafetensorsEntry(dtype: dtype, shape: tensor.shape, bytes: bytes)
    }

    /// An integer tensor (row-major `values`) stored as `dtype` (I64 by default); throws when a value does not fit.
    public static func int(_ values: [Int], shape: [Int], as dtype: SafetensorsDType = .I64) throws -> SafetensorsEntry {
        guard let range = dtype.integerRange else {
            throw FileFormatError(path: "safetensors entry", "cannot store integers as \(dtype.rawValue); use .float(_:as:)")
        }
        guard Tensor.checkedElementCount(shape) == values.count else {
            throw FileFormatError(path: "safetensors entry", "\(values.count) values do not fill shape \(fmt(shape))")
        }
        if let bad = values.first(where: { !range.contains($0) }) {
            throw FileFormatError(path: "safetensors entry", "value \(bad) does not fit in \(dtype.rawValue)")
        }
        return try SafetensorsEntry(dtype: dtype, shape: shape, bytes: SafetensorsConversion.encode(ints: values, as: dtype))
    }
}
