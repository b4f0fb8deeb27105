import Foundation
import PolyPEFTCore

/// A safetensors file opened for reading: the header is parsed and fully validated up front (see
/// `SafetensorsHeader`), before any tensor is allocated; tensor data is decoded on demand from a memory-mapped view
/// of the file, so a large file is never held twice.
///
/// ```swift
/// let file = try SafetensorsFile(contentsOf: url)
/// let x = try file.tensor("x")              // F32/F64/F16/BF16 -> Tensor (Float)
/// let ids = try file.intTensor("task_ids")  // I64/I32/... -> ([Int], shape)
/// ```
public struct SafetensorsFile: Sendable {
    /// The file path (or the name given to an in-memory buffer), used in error messages.
    public let name: String
    /// The `__metadata__` string map (empty when absent).
    public let metadata: [String: String]
    /// Tensor names, sorted.
    public let keys: [String]
    private let infos: [String: SafetensorsTensorInfo]
    private let buffer: Data
    private let dataStart: Int

    /// Opens and validates the file at `url` (memory-mapped).
    public init(contentsOf url: URL) throws {
        try self.init(data: try FileContents.read(url, mapped: true), name: url.path)
    }

    /// Validates an in-memory safetensors buffer; `name` identifies it in error messages.
    public init(data: Data, name: String = "<memory>") throws {
        let header = try data.withUnsafeBytes { try SafetensorsHeader.parse($0, file: name) }
        self.name = name
        self.buffer = data
        self.metadata = header.metadata
        self.infos = header.tensors
        self.keys = header.tensors.keys.sorted()
        self.dataStart = header.dataStart
    }

    /// Dtype, shape and byte range of tensor `key`.
    public func info(_ key: String) throws -> SafetensorsTensorInfo {
        guard let info = infos[key] else {
            throw FileFormatError(path: name, "no tensor named \"\(key)\" (the file has \(keys.count) tensors)")
        }
        return info
    }

    /// True when the file holds a tensor named `key`.
    public func contains(_ key: String) -> Bool { infos[key] != nil }

    /// Calls `body` with the raw little-endian bytes of tensor `key` (no copy).
    public func withRawBytes<R>(_ key: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let r = try info(key).dataOffsets
        return try buffer.withUnsafeBytes { all in
            // The header check guarantees dataStart + r.upperBound == buffer.count at most.
            try body(UnsafeRawBufferPointer(rebasing: all[(dataStart + r.lowerBound)..<(dataStart + r.upperBound)]))
        }
    }

    /// A copy of the raw little-endian bytes of tensor `key`.
    public func rawBytes(_ key: String) throws -> Data { try withRawBytes(key) { Data($0) } }

    /// Tensor `key` as `Float`: floating dtypes are converted (F64 rounds to nearest; F16/BF16 exactly). Integer
    /// dtypes throw unless `convertingIntegers` is true (then each integer becomes the nearest `Float`).
    public func tensor(_ key: String, convertingIntegers: Bool = false) throws -> Tensor {
        let info = try info(key)
        guard info.dtype.isFloatingPoint || convertingIntegers else {
            throw FileFormatError(path: name, "tensor \"\(key)\" is \(info.dtype.rawValue), an integer dtype: "
                + "use intTensor(_:) or pass convertingIntegers: true")
        }
        let values = try withRawBytes(key) { SafetensorsConversion.floats($0, dtype: info.dtype, count: info.elementCount) }
        return Tensor(values, shape: info.shape)
    }

    /// Tensor `key` of an integer dtype (I64, I32, I16, I8, U8, BOOL) as `Int` values in row-major order.
    public func intTensor(_ key: String) throws -> (values: [Int], shape: [Int]) {
        let info = try info(key)
        guard !info.dtype.isFloatingPoint else {
            throw FileFormatError(path: name, "tensor \"\(key)\" is \(info.dtype.rawValue), not an integer dtype: use tensor(_:)")
        }
        let values = try withRawBytes(key) { SafetensorsConversion.ints($0, dtype: info.dtype, count: info.elementCount) }
        return (values, info.shape)
    }

    /// Tensor `key` as a writable entry keeping its dtype and bytes (for copying files exactly).
    public func entry(_ key: String) throws -> SafetensorsEntry {
        let info = try info(key)
        return try SafetensorsEntry(dtype: info.dtype, shape: info.shape, bytes: rawBytes(key))
    }

    /// Every tensor as `Float`. Integer tensors throw (naming the first one) unless `convertingIntegers` is true.
    public func allTensors(convertingIntegers: Bool = false) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for key in keys { out[key] = try tensor(key, convertingIntegers: convertingIntegers) }
        return out
    }
}
