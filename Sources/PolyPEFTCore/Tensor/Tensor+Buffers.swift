/// Several buffers handed to one closure, so that a kernel over three or four arrays reads as one flat body instead
/// of a pyramid of nested `withUnsafe...` closures. Each overload is that nesting written once:
///
/// ```
/// Tensor.withBuffers(g, x, writing: &d) { pg, px, pd in ... }          g, x read; d written in place
/// Tensor.withStorages(a, b, writing: &out) { sa, sb, po in ... }       a's and b's raw storage read
/// ```
///
/// Tensors passed to `withBuffers` are read in row-major order (`withContiguousBuffer`: in place when contiguous,
/// copied first otherwise); `withStorages` hands out the whole storage, for kernels that walk offsets and strides
/// themselves. Arrays after `writing:` are passed `inout` and written in place. The pointers are valid only inside
/// `body`. All of these are inlined, so a kernel written with them compiles to the nested form.
extension Tensor {
    /// `a` read, `out` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, writing out: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in try out.withUnsafeMutableBufferPointer { po in try body(pa, po) } }
    }

    /// `a` and `b` read, `out` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor, writing out: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in
            try b.withContiguousBuffer { pb in try out.withUnsafeMutableBufferPointer { po in try body(pa, pb, po) } }
        }
    }

    /// `a`, `b` and `c` read, `out` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor, _ c: Tensor, writing out: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in
            try b.withContiguousBuffer { pb in
                try c.withContiguousBuffer { pc in try out.withUnsafeMutableBufferPointer { po in try body(pa, pb, pc, po) } }
            }
        }
    }

    /// `a` read, `out1` and `out2` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, writing out1: inout [Float], _ out2: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in
            try out1.withUnsafeMutableBufferPointer { p1 in try out2.withUnsafeMutableBufferPointer { p2 in try body(pa, p1, p2) } }
        }
    }

    /// `a` and `b` read, `out1` and `out2` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor, writing out1: inout [Float], _ out2: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in
            try b.withContiguousBuffer { pb in
                try out1.withUnsafeMutableBufferPointer { p1 in try out2.withUnsafeMutableBufferPointer { p2 in try body(pa, pb, p1, p2) } }
            }
        }
    }

    /// `a`, `b` and `c` read, `out1` and `out2` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor, _ c: Tensor, writing out1: inout [Float], _ out2: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in
            try withBuffers(b, c, writing: &out1, &out2) { pb, pc, p1, p2 in try body(pa, pb, pc, p1, p2) }
        }
    }

    /// `a`, `b`, `c` and `d` read, `out1` and `out2` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ d: Tensor, writing out1: inout [Float],
                               _ out2: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                        UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withBuffers(a, b, writing: &out1, &out2) { pa, pb, p1, p2 in
            try withBuffers(c, d) { pc, pd in try body(pa, pb, pc, pd, p1, p2) }
        }
    }

    /// `a`, `b` and `c` read, `out1`, `out2` and `out3` written.
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor, _ c: Tensor, writing out1: inout [Float],
                               _ out2: inout [Float], _ out3: inout [Float],
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                                        UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withBuffers(a, b, c, writing: &out1, &out2) { pa, pb, pc, p1, p2 in
            try out3.withUnsafeMutableBufferPointer { p3 in try body(pa, pb, pc, p1, p2, p3) }
        }
    }

    /// `a` and `b` read (nothing written).
    @inline(__always)
    package static func withBuffers<R>(_ a: Tensor, _ b: Tensor,
                               _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.withContiguousBuffer { pa in try b.withContiguousBuffer { pb in try body(pa, pb) } }
    }

    /// The whole storage of `a` and of `b` read (index them with the tensors' offsets and strides), `out` written.
    @inline(__always)
    static func withStorages<R>(_ a: Tensor, _ b: Tensor, writing out: inout [Float],
                                _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                                         UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try a.storage.withUnsafeBufferPointer { sa in
            try b.storage.withUnsafeBufferPointer { sb in try out.withUnsafeMutableBufferPointer { po in try body(sa, sb, po) } }
        }
    }
}
