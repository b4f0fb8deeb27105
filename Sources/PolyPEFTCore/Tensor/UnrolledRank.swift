/// Compiles a per-row loop over a short rank once per common rank.
///
/// ```
/// UnrolledRank.with(r) { r in for j in 0..<r { ... } }     // r is a literal 1, 2, 4 or 8 inside, else the runtime r
/// ```
/// Low-rank kernels run loops of `r` (1-16) iterations per row and skill; as counted loops they cost more in loop
/// control than in arithmetic. Called with a literal, the inlined body's loops are unrolled (a training step of the
/// `polyctl train` model went from 3.6 to 3.0 M instructions in `RoutedLowRank` alone).
public enum UnrolledRank {
    @inlinable @inline(__always)
    public static func with(_ r: Int, _ body: (Int) -> Void) {
        switch r {
        case 1: body(1)
        case 2: body(2)
        case 4: body(4)
        case 8: body(8)
        default: body(r)
        }
    }
}
