import Foundation
import PolyPEFTCore

/// The parsed, fully validated header of a safetensors buffer.
///
/// ```
/// [u64 little-endian N] [N bytes UTF-8 JSON header] [data section]
/// header = {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
/// ```
/// Validation follows the reference implementation: N <= 100,000,000; the header is strict JSON (no repeated keys)
/// whose entries have exactly the three fields; `end - begin == product(shape) * dtype size` without overflow; and
/// the entries, sorted by offset, tile the data section exactly: the first begins at 0, each begins where the
/// previous ends, and the last ends at the end of the buffer.
struct SafetensorsHeader {
    /// Largest header length accepted (the reference implementation's `MAX_HEADER_SIZE`).
    static let maxHeaderLength = 100_000_000

    var tensors: [String: SafetensorsTensorInfo]
    var metadata: [String: String]
    /// Offset of the data section in the buffer: 8 + N.
    var dataStart: Int

    /// Parses and validates the header of `buffer` (a whole file); `file` names it in errors. Touches only the
    /// first 8 + N bytes, allocates no tensor.
    static func parse(_ buffer: UnsafeRawBufferPointer, file: String) throws -> SafetensorsHeader {
        func fail(_ message: String) -> FileFormatError { FileFormatError(path: file, message) }
        guard buffer.count >= 8 else { throw fail("file is \(buffer.count) bytes, too short for the 8-byte header length") }
        let n = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n <= UInt64(maxHeaderLength) else { throw fail("header length \(n) exceeds the limit of \(maxHeaderLength) bytes") }
        let headerLength = Int(n)
        guard 8 + headerLength <= buffer.count else {
            throw fail("header length \(n) runs past the end of the file (\(buffer.count) bytes)")
        }
        let headerBytes = [UInt8](buffer[8..<(8 + headerLength)])
        if let bad = JSONParser.firstInvalidUTF8(headerBytes) { throw fail("header is not valid UTF-8 (byte \(bad) of the header)") }
        let json: JSONValue
        do { json = try JSONParser.parse(bytes: headerBytes) } catch let e as JSONError {
            throw fail("header is not valid JSON: \(e)")
        }
        guard case .object(var members) = json else { throw fail("header is not a JSON object (found \(json.kindName))") }

        var metadata: [String: String] = [:]
        // `"__metadata__": null` is accepted, as the reference implementation reads it as "no metadata".
        if let meta = members.removeValue(forKey: "__metadata__"), meta != .null {
            guard case .object(let pairs) = meta else { throw fail("__metadata__ is not an object of strings (found \(meta.kindName))") }
            for key in pairs.keys.sorted() {
                guard case .string(let v) = pairs[key]! else {
                    throw fail("__metadata__ value for \"\(key)\" is not a string (found \(pairs[key]!.kindName))")
                }
                metadata[key] = v
            }
        }

        let dataLength = buffer.count - 8 - headerLength
        var tensors: [String: SafetensorsTensorInfo] = [:]
        for key in members.keys.sorted() {
            tensors[key] = try parseEntry(members[key]!, key: key, fail: fail)
        }

        // The entries sorted by offset must tile [0, dataLength) exactly.
        let ordered = tensors.sorted { a, b in
            (a.value.dataOffsets.lowerBound, a.value.dataOffsets.upperBound, a.key)
                < (b.value.dataOffsets.lowerBound, b.value.dataOffsets.upperBound, b.key)
        }
        var position = 0
        for (key, info) in ordered {
            let r = info.dataOffsets
            guard r.lowerBound == position else {
                let previous = position == 0 ? "the data section starts at byte 0" : "the previous tensor ends at byte \(position)"
                throw fail("tensor \"\(key)\": data_offsets [\(r.lowerBound), \(r.upperBound)] start at byte \(r.lowerBound) but "
                    + "\(previous) (tensors must tile the data section without gaps or overlaps)")
            }
            position = r.upperBound
        }
        guard position == dataLength else {
            throw fail("tensors end at byte \(position) but the data section holds \(dataLength) bytes")
        }
        return SafetensorsHeader(tensors: tensors, metadata: metadata, dataStart: 8 + headerLength)
    }

    /// Validates one `{"dtype", "shape", "data_offsets"}` entry.
    private static func parseEntry(_ value: JSONValue, key: String,
                                   fail: (String) -> FileFormatError) throws -> SafetensorsTensorInfo {
        let name = "tensor \"\(key)\""
        guard case .object(let fields) = value else { throw fail("\(name): entry is not an object (found \(value.kindName))") }
        for field in ["dtype", "shape", "data_offsets"] where fields[field] == nil { throw fail("\(name): missing field \"\(field)\"") }
        if let extra = fields.keys.sorted().first(where: { !["dtype", "shape", "data_offsets"].contains($0) }) {
            throw fail("\(name): unexpected field \"\(extra)\"")
        }
        guard case .string(let dtypeName) = fields["dtype"]! else {
            throw fail("\(name): dtype is not a string (found \(fields["dtype"]!.kindName))")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            let known = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail("\(name): unsupported dtype \"\(dtypeName)\" (supported: \(known))")
        }
        guard case .array(let dims) = fields["shape"]! else {
            throw fail("\(name): shape is not an array of integers (found \(fields["shape"]!.kindName))")
        }
        var shape: [Int] = []
        for d in dims {
            guard case .int(let e) = d, e >= 0 else { throw fail("\(name): shape entry \(short(d)) is not a non-negative integer") }
            shape.append(e)
        }
        guard let count = Tensor.checkedElementCount(shape) else {
            throw fail("\(name): shape \(fmt(shape)) has more elements than fit in memory")
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw fail("\(name): \(dtype.rawValue) shape \(fmt(shape)) needs more bytes than fit in memory") }
        let offsets = fields["data_offsets"]!
        guard case .array(let pair) = offsets, pair.count == 2, case .int(let begin) = pair[0], case .int(let end) = pair[1],
              begin >= 0, end >= 0 else {
            throw fail("\(name): data_offsets must be [begin, end] with two non-negative integers (found \(short(offsets)))")
        }
        guard begin <= end else { throw fail("\(name): data_offsets [\(begin), \(end)] begin is after end") }
        guard end - begin == byteCount else {
            throw fail("\(name): data_offsets [\(begin), \(end)] hold \(end - begin) bytes but \(dtype.rawValue) \(fmt(shape)) needs \(byteCount)")
        }
        return SafetensorsTensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end, elementCount: count)
    }

    /// A JSON value in an error message, cut to 40 characters.
    private static func short(_ v: JSONValue) -> String {
        let s = v.compactString()
        return s.count <= 40 ? s : String(s.prefix(37)) + "..."
    }
}
