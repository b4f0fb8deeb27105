import Foundation

/// A dense n-dimensional array of `Float`: a strided view over copy-on-write storage.
///
/// `Tensor` is a value type. Views (`reshaped`, `permuted`, `sliced`, `expanded`, ...) share storage with the tensor
/// they come from; any mutation copies the storage first when it is shared, so a view never changes its source.
///
/// ```
/// element(i0, ..., i{n-1}) = storage[offset + sum_d i_d * strides[d]]
/// ```
///
/// Strides may be zero (broadcast dimensions) but never negative. A rank-0 tensor is a scalar with `shape == []`.
public struct Tensor: Sendable {
    /// The backing buffer. It may be larger than `count` (views) and shared with other tensors.
    public internal(set) var storage: [Float]
    /// Extent of each dimension.
    public let shape: [Int]
    /// Step in `storage` between neighbours along each dimension.
    public let strides: [Int]
    /// Index in `storage` of the element at all-zero indices.
    public let offset: Int

    /// Wraps `storage` with an explicit layout. The caller guarantees every addressable element lies in `storage`.
    public init(storage: [Float], shape: [Int], strides: [Int], offset: Int = 0) {
        precondition(shape.count == strides.count, "Tensor: shape \(fmt(shape)) and strides \(fmt(strides)) differ in rank")
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative extent in shape \(fmt(shape))")
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// A contiguous row-major tensor holding `data`; `data.count` must equal the product of `shape`.
    public init(_ data: [Float], shape: [Int]) {
        precondition(Tensor.elementCount(shape) == data.count,
                     "Tensor: \(data.count) values do not fill shape \(fmt(shape))")
        self.init(storage: data, shape: shape, strides: Tensor.contiguousStrides(shape))
    }

    /// A contiguous tensor from `data`, throwing when the count does not match the shape (for user input).
    public init(validating data: [Float], shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError("init", "negative extent in shape \(fmt(shape))") }
        guard let n = Tensor.checkedElementCount(shape) else {
            throw TensorError("init", "shape \(fmt(shape)) has more elements than fit in memory")
        }
        guard n == data.count else { throw TensorError("init", "\(data.count) values do not fill shape \(fmt(shape)) (\(n) elements)") }
        self.init(data, shape: shape)
    }

    /// A contiguous tensor with every element equal to `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init([Float](repeating: value, count: Tensor.elementCount(shape)), shape: shape)
    }

    /// A rank-0 tensor.
    public init(scalar: Float) { self.init([scalar], shape: []) }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Number of elements (1 for a scalar).
    public var count: Int { Tensor.elementCount(shape) }

    /// True when the elements sit in row-major order with no gaps, starting at `offset`.
    public var isContiguous: Bool {
        var expected = 1
        for d in stride(from: rank - 1, through: 0, by: -1) where shape[d] != 1 {
            if strides[d] != expected { return false }
            expected *= shape[d]
        }
        return true
    }

    /// The value of a one-element tensor.
    public var scalarValue: Float {
        precondition(count == 1, "scalarValue: tensor of shape \(fmt(shape)) has \(count) elements")
        return storage[offset]
    }

    /// Reads or writes one element. Indices are checked.
    public subscript(_ index: Int...) -> Float {
        get { storage[storageIndex(index)] }
        set {
            let i = storageIndex(index)
            if strides.contains(0) && !isContiguous {
                // Writing through a broadcast view would change several logical elements: materialise first.
                self = contiguous()
                self.storage[storageIndex(index)] = newValue
            } else {
                storage[i] = newValue
            }
        }
    }

    func storageIndex(_ index: [Int]) -> Int {
        precondition(index.count == rank, "subscript: \(index.count) indices for a tensor of rank \(rank)")
        var p = offset
        for d in 0..<rank {
            precondition(index[d] >= 0 && index[d] < shape[d],
                         "subscript: index \(index[d]) out of range for dimension \(d) of shape \(fmt(shape))")
            p += index[d] * strides[d]
        }
        return p
    }

    /// The elements in row-major order.
    public var scalars: [Float] {
        if isContiguous {
            return Array(storage[offset..<(offset + count)])
        }
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { dst in
            storage.withUnsafeBufferPointer { src in
                Tensor.gatherStrided(src.baseAddress!, offset: offset, shape: shape, strides: strides, into: dst.baseAddress!)
            }
        }
        return out
    }

    /// A row-major contiguous tensor with the same elements; `self` when already contiguous at offset 0 with no
    /// extra storage.
    public func contiguous() -> Tensor {
        if isContiguous && offset == 0 && storage.count == count { return self }
        return Tensor(scalars, shape: shape)
    }

    /// Calls `body` with a pointer to the elements in row-major order (copying first only if not contiguous).
    @inlinable
    public func withContiguousBuffer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if isContiguous {
            return try storage.withUnsafeBufferPointer { buf in
                try body(UnsafeBufferPointer(rebasing: buf[offset..<(offset + count)]))
            }
        }
        return try scalars.withUnsafeBufferPointer(body)
    }

    /// Makes `self` contiguous at offset 0 with unshared storage and calls `body` with a mutable pointer to its
    /// elements in row-major order.
    public mutating func withUnsafeMutableElements<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !(isContiguous && offset == 0 && storage.count == count) { self = Tensor(scalars, shape: shape) }
        return try storage.withUnsafeMutableBufferPointer { try body($0) }
    }

    // MARK: Shape arithmetic

    /// Product of the extents (1 for `[]`).
    public static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Product of the extents, or nil on overflow (for shapes read from files).
    public static func checkedElementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for e in shape {
            guard e >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: e)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Row-major strides for `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = s
            s *= shape[d]
        }
        return strides
    }

    /// Copies a strided view into a contiguous destination in row-major order.
    ///
    /// The innermost dimension is copied by a tight loop; outer dimensions by an odometer.
    
    static func gatherStrided(_ src: UnsafePointer<Float>, offset: Int, shape: [Int], strides: [Int],
                              into dst: UnsafeMutablePointer<Float>) {
        let n = elementCount(shape)
        if n == 0 { return }
        if shape.isEmpty { dst[0] = src[offset]; return }
        let r = shape.count
        let inner = shape[r - 1], innerStride = strides[r - 1]
        var index = [Int](repeating: 0, count: r - 1)
        var base = offset
        var o = 0
        while o < n {
            if innerStride == 1 {
                (dst + o).update(from: src + base, count: inner)
            } else {
                var p = base
                for j in 0..<inner { dst[o + j] = src[p]; p += innerStride }
            }
            o += inner
            // Advance the odometer over the outer dimensions.
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                base += strides[d]
                if index[d] < shape[d] { break }
                base -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }
}

extension Tensor {
    /// Storage for `count` floats left uninitialised (no zero fill): the caller writes every element before any is
    /// read.
    @usableFromInline
    package static func uninitializedScalars(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, n in n = count }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = scalars
        let shown = values.prefix(8).map { String(format: "%.4g", Double($0)) }.joined(separator: ", ")
        return "Tensor(shape: \(fmt(shape)), [\(shown)\(values.count > 8 ? ", ..." : "")])"
    }
}

extension Tensor: Equatable {
    /// Equal when shapes and elements are equal (layout does not matter).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        lhs.shape == rhs.shape && lhs.scalars == rhs.scalars
    }
}
