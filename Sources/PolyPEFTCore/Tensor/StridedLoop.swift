/// Iteration over strided layouts: the one loop every elementwise op and reduction is built on.
///
/// Walks `shape` in row-major order with an odometer over the outer dimensions and hands the innermost run to
/// `body(count, pa, sa, pb, sb, po)`: `count` elements starting at storage positions `pa`/`pb` with steps `sa`/`sb` for
/// the two operands, and output position `po` (contiguous). Either operand may have stride 0 (broadcast).
@inline(__always)
func stridedPairLoop(shape: [Int], stridesA: [Int], offsetA: Int, stridesB: [Int], offsetB: Int,
                     _ body: (_ count: Int, _ pa: Int, _ sa: Int, _ pb: Int, _ sb: Int, _ po: Int) -> Void) {
    let n = Tensor.elementCount(shape)
    if n == 0 { return }
    let r = shape.count
    if r == 0 { body(1, offsetA, 0, offsetB, 0, 0); return }
    // Merge dimensions that are contiguous with each other in both operands, so the inner run is as long as possible.
    var dims: [(n: Int, a: Int, b: Int)] = []
    for d in 0..<r where shape[d] != 1 {
        if let last = dims.last, last.a == stridesA[d] * shape[d], last.b == stridesB[d] * shape[d] {
            dims[dims.count - 1] = (last.n * shape[d], stridesA[d], stridesB[d])
        } else {
            dims.append((shape[d], stridesA[d], stridesB[d]))
        }
    }
    if dims.isEmpty { body(1, offsetA, 0, offsetB, 0, 0); return }
    let inner = dims.removeLast()
    var index = [Int](repeating: 0, count: dims.count)
    var pa = offsetA, pb = offsetB, po = 0
    while po < n {
        body(inner.n, pa, inner.a, pb, inner.b, po)
        po += inner.n
        var d = dims.count - 1
        while d >= 0 {
            index[d] += 1
            pa += dims[d].a
            pb += dims[d].b
            if index[d] < dims[d].n { break }
            pa -= dims[d].a * dims[d].n
            pb -= dims[d].b * dims[d].n
            index[d] = 0
            d -= 1
        }
    }
}
