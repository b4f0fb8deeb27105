/// A per-row low-rank term that a product adds to its result as it stores it: a routed adapter's update, fused into
/// the base layer's matmul so that the update costs its flops and no pass over C of its own.
///
/// ```
/// C[i, j] += sum_t h[i, t] * F[g(i)][t, j]          h: [m, rank], F: [G, rank, n], g(i) = groupOfRow[i] (or 0)
/// h[i, t] = h[i * rank + t];   F[g][t, j] = factors[g * groupStride + t * ldf + j]
/// ```
/// In `GemmPacked` the term is added to each 6x16 register tile after its last block of depth, before the tile is
/// stored: `rank` more broadcast-FMA steps per tile, about `rank / k` of the product's flops, and C is never read
/// again. The other kernels add it afterwards (`apply`), which is what `reference` checks them all against.
/// Rows of C map to rows of `h` and `groupOfRow` one to one, so a caller whose C starts at row `r0` passes
/// `rowOffset(r0)`.
package struct GemmRowTail {
    package let h: UnsafePointer<Float>
    package let rank: Int
    package let factors: UnsafePointer<Float>
    package let ldf: Int
    package let groupStride: Int
    /// The factor each row reads; nil when every row reads group 0 (a factor shared by all rows).
    package let groupOfRow: UnsafePointer<Int>?

    package init(h: UnsafePointer<Float>, rank: Int, factors: UnsafePointer<Float>, ldf: Int, groupStride: Int,
                 groupOfRow: UnsafePointer<Int>?) {
        self.h = h
        self.rank = rank
        self.factors = factors
        self.ldf = ldf
        self.groupStride = groupStride
        self.groupOfRow = groupOfRow
    }

    /// The factor row `t` of `row`'s group, starting at column `col`.
    @inline(__always)
    package func factor(row: Int, col: Int) -> UnsafePointer<Float> {
        factors + (groupOfRow.map { $0[row] } ?? 0) * groupStride + col
    }

    /// Whether rows `0..<rows` all read the same factor.
    @inline(__always)
    package func sameGroup(rows: Int) -> Bool {
        guard let g = groupOfRow else { return true }
        for i in 1..<rows where g[i] != g[0] { return false }
        return true
    }

    /// The same term for a C that starts `r0` rows further down.
    package func rowOffset(_ r0: Int) -> GemmRowTail {
        GemmRowTail(h: h + r0 * rank, rank: rank, factors: factors, ldf: ldf, groupStride: groupStride,
                    groupOfRow: groupOfRow.map { $0 + r0 })
    }

    /// The same term for a C whose first column is the factors' column `c0`.
    package func columnOffset(_ c0: Int) -> GemmRowTail {
        GemmRowTail(h: h, rank: rank, factors: factors + c0, ldf: ldf, groupStride: groupStride, groupOfRow: groupOfRow)
    }

    /// Adds (or, with `overwrite`, stores) the term over rows `rows` and columns `cols` of C, a row at a time: the
    /// row's `rank` values of `h` are broadcast once and each group of eight outputs is one register.
    package func apply(rows: Range<Int>, cols: Range<Int>, c: UnsafeMutablePointer<Float>, ldc: Int, overwrite: Bool = false) {
        UnrolledRank.with(rank) { rank in
            for i in rows {
                let hr = h + i * rank, f = factor(row: i, col: 0), cr = c + i * ldc
                var j = cols.lowerBound
                while j + 8 <= cols.upperBound {
                    var acc = overwrite ? SIMD8<Float>() : load8(cr + j)
                    for t in 0..<rank { acc = fma8(acc, SIMD8(repeating: hr[t]), load8(f + t * ldf + j)) }
                    store8(acc, cr + j)
                    j += 8
                }
                while j < cols.upperBound {
                    var s: Float = overwrite ? 0 : cr[j]
                    for t in 0..<rank { s += hr[t] * f[t * ldf + j] }
                    cr[j] = s
                    j += 1
                }
            }
        }
    }

    /// Adds the term to the 16 columns of one tile row held in two registers (`col` is C's column of the first).
    @inline(__always)
    package func add(row: Int, col: Int, _ c0: inout SIMD8<Float>, _ c1: inout SIMD8<Float>) {
        let hr = h + row * rank, f = factor(row: row, col: col)
        for t in 0..<rank {
            let s = SIMD8<Float>(repeating: hr[t])
            c0 = fma8(c0, s, load8(f + t * ldf))
            c1 = fma8(c1, s, load8(f + t * ldf + 8))
        }
    }

    /// The oracle: the same sum with plain scalar loops, in `Double`.
    package func reference(m: Int, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for t in 0..<rank { s += Double(h[i * rank + t]) * Double(factor(row: i, col: j)[t * ldf]) }
                c[i * ldc + j] = Float(Double(c[i * ldc + j]) + s)
            }
        }
    }
}
