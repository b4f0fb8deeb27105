import Foundation
import PolyPEFTCore

/// Element conversions between safetensors' little-endian encodings and `Float` / `Int`.
///
/// ```
/// F16  (1|5|10 bits):  normal  (-1)^s * 2^(e-15) * (1 + m/1024),  subnormal (e = 0)  (-1)^s * 2^-14 * m/1024
/// BF16 (1|8|7 bits):   the upper half of a Float32, so widening is bits << 16
/// ```
/// Widening (F16/BF16 -> Float) is exact for every value, including subnormals, infinities and NaN (payload kept).
/// Narrowing rounds to nearest, ties to even, overflowing to infinity as PyTorch does; a NaN stays a quiet NaN.
enum SafetensorsConversion {
    /// F16 bits -> Float, exactly.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }  // inf / NaN
        if exponent != 0 { return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13)) }
        // Zero or subnormal: m * 2^-24, exact in Float.
        let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)  // 2^-24
        return sign != 0 ? -magnitude : magnitude
    }

    /// Float -> F16 bits, round to nearest even.
    static func floatToHalf(_ f: Float) -> UInt16 {
        let b = f.bitPattern
        let sign = UInt16((b >> 16) & 0x8000)
        let exp = Int((b >> 23) & 0xFF)
        let mant = b & 0x7F_FFFF
        if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 | UInt16(mant >> 13) : 0) }
        let e = exp - 127 + 15  // biased half exponent
        if e >= 0x1F { return sign | 0x7C00 }  // |f| >= 2^16: infinity
        if e <= 0 {
            // Subnormal half (or zero): units of 2^-24. The implicit bit is present unless f is itself subnormal,
            // and a Float subnormal is far below half a unit, so it rounds to zero.
            guard exp != 0 else { return sign }
            let m = mant | 0x80_0000
            let shift = 14 - e  // >= 14
            if shift >= 32 { return sign }
            return sign | UInt16(roundShift(m, shift))
        }
        // Normal: keep 10 mantissa bits; a carry out of the mantissa correctly bumps the exponent (up to infinity).
        let h = UInt32(e << 10) | (mant >> 13)
        return sign | UInt16(roundShift((h << 13) | (mant & 0x1FFF), 13))
    }

    /// `x >> shift` rounded to nearest, ties to even.
    private static func roundShift(_ x: UInt32, _ shift: Int) -> UInt32 {
        let kept = x >> UInt32(shift)
        let rest = x & ((1 << UInt32(shift)) - 1)
        let half: UInt32 = 1 << UInt32(shift - 1)
        return rest > half || (rest == half && kept & 1 == 1) ? kept + 1 : kept
    }

    /// BF16 bits -> Float, exactly.
    static func bfloat16ToFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Float -> BF16 bits, round to nearest even; NaN becomes 0x7FC0 as in PyTorch.
    static func floatToBFloat16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let b = f.bitPattern
        return UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// Decodes `count` elements of `dtype` as `Float` (integers convert to the nearest `Float`).
    static func floats(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int) -> [Float] {
        precondition(raw.count >= count * dtype.byteSize, "SafetensorsConversion: buffer too small")
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            switch dtype {
            case .F32:
                #if _endian(little)
                if count > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: 4 * count) }
                #else
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                #endif
            case .F64: for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .F16: for i in 0..<count { out[i] = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .BF16: for i in 0..<count { out[i] = bfloat16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            default:
                let ints = self.ints(raw, dtype: dtype, count: count)
                for i in 0..<count { out[i] = Float(ints[i]) }
            }
            initialized = count
        }
    }

    /// Decodes `count` elements of an integer `dtype` (BOOL: any non-zero byte is 1).
    static func ints(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int) -> [Int] {
        precondition(!dtype.isFloatingPoint && raw.count >= count * dtype.byteSize, "SafetensorsConversion: bad int decode")
        return (0..<count).map { i -> Int in
            switch dtype {
            case .I64: return Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
            case .I32: return Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
            case .I16: return Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
            case .I8: return Int(Int8(bitPattern: raw[i]))
            case .U8: return Int(raw[i])
            default: return raw[i] == 0 ? 0 : 1  // BOOL
            }
        }
    }

    /// Encodes `values` as little-endian `dtype` bytes (a floating dtype).
    static func encode(floats values: UnsafeBufferPointer<Float>, as dtype: SafetensorsDType) -> Data {
        var data = Data(count: values.count * dtype.byteSize)
        guard !values.isEmpty else { return data }
        data.withUnsafeMutableBytes { out in
            switch dtype {
            case .F32:
                #if _endian(little)
                out.baseAddress!.copyMemory(from: values.baseAddress!, byteCount: 4 * values.count)
                #else
                for (i, v) in values.enumerated() { out.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
                #endif
            case .F64: for (i, v) in values.enumerated() { out.storeBytes(of: Double(v).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
            case .F16: for (i, v) in values.enumerated() { out.storeBytes(of: floatToHalf(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .BF16: for (i, v) in values.enumerated() { out.storeBytes(of: floatToBFloat16(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            default: preconditionFailure("encode(floats:) called with integer dtype \(dtype)")
            }
        }
        return data
    }

    /// Encodes `values` as little-endian `dtype` bytes (an integer dtype; the caller checked the range).
    static func encode(ints values: [Int], as dtype: SafetensorsDType) -> Data {
        var data = Data(count: values.count * dtype.byteSize)
        data.withUnsafeMutableBytes { out in
            for (i, v) in values.enumerated() {
                switch dtype {
                case .I64: out.storeBytes(of: Int64(v).littleEndian, toByteOffset: 8 * i, as: Int64.self)
                case .I32: out.storeBytes(of: Int32(v).littleEndian, toByteOffset: 4 * i, as: Int32.self)
                case .I16: out.storeBytes(of: Int16(v).littleEndian, toByteOffset: 2 * i, as: Int16.self)
                case .I8: out.storeBytes(of: Int8(v), toByteOffset: i, as: Int8.self)
                case .U8, .BOOL: out.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self)
                default: preconditionFailure("encode(ints:) called with floating dtype \(dtype)")
                }
            }
        }
        return data
    }
}
