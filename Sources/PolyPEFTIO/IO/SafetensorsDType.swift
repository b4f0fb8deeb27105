import PolyPEFTCore

/// Element types of the safetensors format that PolyPEFT reads and writes (little-endian, row-major).
///
/// Floating types load as `Float` (F64 rounds to nearest, F16/BF16 convert exactly); integer types load as `Int`
/// (`SafetensorsFile.intTensor`) or, when asked, as `Float`.
public enum SafetensorsDType: String, Sendable, CaseIterable, Equatable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// True for F64, F32, F16, BF16.
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: return true
        default: return false
        }
    }

    /// Position in the reference implementation's `Dtype` enum, which is in increasing alignment order. Writers lay
    /// tensors out by descending rank, then by name (so the largest alignments come first), as the
    /// `safetensors` library does; this makes our files byte-identical to Python's.
    var layoutRank: Int {
        switch self {
        case .BOOL: return 0
        case .U8: return 1
        case .I8: return 2
        case .I16: return 3
        case .F16: return 4
        case .BF16: return 5
        case .I32: return 6
        case .F32: return 7
        case .F64: return 8
        case .I64: return 9
        }
    }

    /// Inclusive range of integers an integer dtype can hold (nil for floating types).
    var integerRange: ClosedRange<Int>? {
        switch self {
        case .I64: return Int.min...Int.max
        case .I32: return Int(Int32.min)...Int(Int32.max)
        case .I16: return Int(Int16.min)...Int(Int16.max)
        case .I8: return Int(Int8.min)...Int(Int8.max)
        case .U8: return 0...255
        case .BOOL: return 0...1
        default: return nil
        }
    }
}
