/// Views and joins. Backward applies the inverse view, or scatters into zeros.
extension Variable {
    public func reshaped(_ newShape: [Int]) throws -> Variable {
        let xs = shape
        return Variable.record(try value.reshaped(newShape), [self]) { g, _ in [try g.reshaped(xs)] }
    }

    public func permuted(_ order: [Int]) throws -> Variable {
        var inverse = [Int](repeating: 0, count: order.count)
        for (i, o) in order.enumerated() where o >= 0 && o < order.count { inverse[o] = i }
        return Variable.record(try value.permuted(order), [self]) { g, _ in [try g.permuted(inverse)] }
    }

    public func transposed(_ a: Int = -2, _ b: Int = -1) throws -> Variable {
        let (a, b) = (try Tensor.normalizeAxis(a, rank: value.rank, "transpose"), try Tensor.normalizeAxis(b, rank: value.rank, "transpose"))
        var order = Array(0..<value.rank)
        order.swapAt(a, b)
        return try permuted(order)
    }

    public func expanded(to target: [Int]) throws -> Variable {
        let xs = shape
        return Variable.record(try value.expanded(to: target), [self]) { g, _ in [try g.reduced(toShape: xs)] }
    }

    public func unsqueezed(_ axis: Int) throws -> Variable {
        let xs = shape
        return Variable.record(try value.unsqueezed(axis), [self]) { g, _ in [try g.reshaped(xs)] }
    }

    public func squeezed(_ axis: Int? = nil) throws -> Variable {
        let xs = shape
        return Variable.record(try value.squeezed(axis), [self]) { g, _ in [try g.reshaped(xs)] }
    }

    /// A strided slice;  dx = zeros with g written into the sliced positions.
    public func sliced(axis: Int, start: Int = 0, end: Int? = nil, step: Int = 1) throws -> Variable {
        let a = try Tensor.normalizeAxis(axis, rank: value.rank, "slice")
        let xs = shape
        let n = xs[a]
        let s0 = start < 0 ? Swift.max(start + n, 0) : Swift.min(start, n)
        let out = try value.sliced(axis: a, start: start, end: end, step: step)
        let indices = (0..<out.shape[a]).map { s0 + $0 * step }
        return Variable.record(out, [self]) { g, _ in [try Tensor.zeros(xs).indexAdd(axis: a, indices, g.contiguous())] }
    }

    /// Rows at `indices` along `axis` (embedding lookup);  dx = index_add of g into zeros.
    public func indexSelect(axis: Int = 0, _ indices: [Int]) throws -> Variable {
        let xs = shape
        let a = try Tensor.normalizeAxis(axis, rank: value.rank, "index_select")
        return Variable.record(try value.indexSelect(axis: a, indices), [self]) { g, _ in
            [try Tensor.zeros(xs).indexAdd(axis: a, indices, g.contiguous())]
        }
    }

    /// Joins along `axis`;  each input gets its slice of g.
    public static func concatenate(_ parts: [Variable], axis: Int = 0) throws -> Variable {
        let value = try Tensor.concatenate(parts.map(\.value), axis: axis)
        let a = try Tensor.normalizeAxis(axis, rank: value.rank, "concat")
        let sizes = parts.map { $0.shape[a] }
        return record(value, parts) { g, needs in
            zip(try g.split(sizes: sizes, axis: a), needs).map { $1 ? $0 : nil }
        }
    }

    /// Views of `sizes` along `axis`.
    public func split(sizes: [Int], axis: Int = 0) throws -> [Variable] {
        let a = try Tensor.normalizeAxis(axis, rank: value.rank, "split")
        _ = try value.split(sizes: sizes, axis: a)
        var start = 0
        return try sizes.map { n in
            defer { start += n }
            return try sliced(axis: a, start: start, end: start + n)
        }
    }
}
