import Foundation

/// One tensor to write: dtype, shape and its little-endian bytes, checked to agree.
public struct SafetensorsEntry: Sendable, Equatable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let bytes: Data

    /// An entry from raw bytes; throws when `bytes.count != product(shape) * dtype.byteSize`.
    public init(dtype: SafetensorsDType, shape: [Int], bytes: Data) throws {
        guard let n = Tensor.checkedElementCount(shape), case let (size, false) = n.multipliedReportingOverflow(by: dtype.byteSize),
              size == bytes.count else {
            throw TensorError("safetensors entry", "\(bytes.count) bytes do not hold \(dtype.rawValue) \(fmt(shape))")
        }
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A floating-point tensor stored as `dtype` (F32 by default; F16/BF16 round to nearest even).
    public static func float(_ tensor: Tensor, as dtype: SafetensorsDType = .F32) throws -> SafetensorsEntry {
        guard dtype.isFloatingPoint else {
            throw TensorError("safetensors entry", "cannot store a Float tensor as \(dtype.rawValue); use .int(_:shape:as:)")
        }
        let bytes = tensor.withContiguousBuffer { SafetensorsConversion.encode(floats: $0, as: dtype) }
        return try SafetensorsEntry(dtype: dtype, shape: tensor.shape, bytes: bytes)
    }

    /// An integer tensor (row-major `values`) stored as `dtype` (I64 by default); throws when a value does not fit.
    public static func int(_ values: [Int], shape: [Int], as dtype: SafetensorsDType = .I64) throws -> SafetensorsEntry {
        guard let range = dtype.integerRange else {
            throw TensorError("safetensors entry", "cannot store integers as \(dtype.rawValue); use .float(_:as:)")
        }
        guard Tensor.checkedElementCount(shape) == values.count else {
            throw TensorError("safetensors entry", "\(values.count) values do not fill shape \(fmt(shape))")
        }
        if let bad = values.first(where: { !range.contains($0) }) {
            throw TensorError("safetensors entry", "value \(bad) does not fit in \(dtype.rawValue)")
        }
        return try SafetensorsEntry(dtype: dtype, shape: shape, bytes: SafetensorsConversion.encode(ints: values, as: dtype))
    }
}

/// Writing safetensors files the way the reference `safetensors` library does, byte for byte:
///
/// ```
/// order   = entries sorted by dtype alignment (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL), then name
/// header  = {"__metadata__":{..sorted..},"<name>":{"dtype":"F32","shape":[2,3],"data_offsets":[b,e]},...}
///           compact JSON in that order, padded with spaces to a multiple of 8 bytes
/// file    = u64le(header length) ++ header ++ data of each entry in that order, contiguous
/// ```
public enum Safetensors {
    /// Encodes `entries` (and optional string metadata) as a safetensors buffer.
    public static func encode(entries: [String: SafetensorsEntry], metadata: [String: String]? = nil) throws -> Data {
        if entries["__metadata__"] != nil {
            throw TensorError("safetensors encode", "\"__metadata__\" is reserved and cannot name a tensor")
        }
        let ordered = entries.sorted { a, b in
            a.value.dtype.layoutRank != b.value.dtype.layoutRank ? a.value.dtype.layoutRank > b.value.dtype.layoutRank
                : a.key.utf8.lexicographicallyPrecedes(b.key.utf8)  // byte order, as Rust compares strings
        }
        var header = "{"
        var first = true
        if let metadata {
            header += "\"__metadata__\":" + JSONValue.object(metadata.mapValues { .string($0) }).compactString()
            first = false
        }
        var offset = 0
        for (key, entry) in ordered {
            if !first { header += "," }
            first = false
            JSONValue.writeString(key, asciiOnly: false, into: &header)
            header += ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[" + entry.shape.map(String.init).joined(separator: ",")
                + "],\"data_offsets\":[\(offset),\(offset + entry.bytes.count)]}"
            offset += entry.bytes.count
        }
        header += "}"
        var headerBytes = Data(header.utf8)
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        var out = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        for (_, entry) in ordered { out.append(entry.bytes) }
        return out
    }

    /// Encodes Float tensors, all stored as `dtype` (F32 by default; F64, F16 or BF16 on request).
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String]? = nil,
                              dtype: SafetensorsDType = .F32) throws -> Data {
        try encode(entries: tensors.mapValues { try SafetensorsEntry.float($0, as: dtype) }, metadata: metadata)
    }

    /// Writes `entries` to `url` atomically (see `AtomicFile`).
    public static func write(entries: [String: SafetensorsEntry], metadata: [String: String]? = nil, to url: URL) throws {
        try AtomicFile.write(encode(entries: entries, metadata: metadata), to: url)
    }

    /// Writes Float tensors to `url` atomically, stored as `dtype`.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String]? = nil,
                             dtype: SafetensorsDType = .F32, to url: URL) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata, dtype: dtype), to: url)
    }

    /// Reads every floating-point tensor of the file at `url` as `Float` (integer tensors throw unless
    /// `convertingIntegers`).
    public static func read(_ url: URL, convertingIntegers: Bool = false) throws -> [String: Tensor] {
        try SafetensorsFile(contentsOf: url).allTensors(convertingIntegers: convertingIntegers)
    }
}
