import Foundation
import PolyPEFTCore

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
        let parts = try layout(entries: entries, metadata: metadata)
        var out = Data(capacity: parts.reduce(0) { $0 + $1.count })
        for p in parts { out.append(p) }
        return out
    }

    /// The file as consecutive pieces: length field and header, then each entry's bytes in layout order.
    static func layout(entries: [String: SafetensorsEntry], metadata: [String: String]?) throws -> [Data] {
        if entries["__metadata__"] != nil {
            throw FileFormatError(path: "safetensors encode", "\"__metadata__\" is reserved and cannot name a tensor")
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
        var first8 = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { first8.append(contentsOf: $0) }
        return [first8 + headerBytes] + ordered.map(\.value.bytes)
    }

    /// Encodes Float tensors, all stored as `dtype` (F32 by default; F64, F16 or BF16 on request).
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String]? = nil,
                              dtype: SafetensorsDType = .F32) throws -> Data {
        try encode(entries: tensors.mapValues { try SafetensorsEntry.float($0, as: dtype) }, metadata: metadata)
    }

    /// Writes `entries` to `url` atomically (see `AtomicFile`).
    public static func write(entries: [String: SafetensorsEntry], metadata: [String: String]? = nil, to url: URL) throws {
        try AtomicFile.write(parts: layout(entries: entries, metadata: metadata), to: url)
    }

    /// Writes Float tensors to `url` atomically, stored as `dtype`.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String]? = nil,
                             dtype: SafetensorsDType = .F32, to url: URL) throws {
        let entries = try tensors.mapValues { try SafetensorsEntry.float($0, as: dtype) }
        try AtomicFile.write(parts: layout(entries: entries, metadata: metadata), to: url)
    }

    /// Reads every floating-point tensor of the file at `url` as `Float` (integer tensors throw unless
    /// `convertingIntegers`).
    public static func read(_ url: URL, convertingIntegers: Bool = false) throws -> [String: Tensor] {
        try SafetensorsFile(contentsOf: url).allTensors(convertingIntegers: convertingIntegers)
    }
}
