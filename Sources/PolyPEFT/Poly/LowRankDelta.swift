/// The heavy part of every routed LoRA layer as one primitive: rows of `x` are partitioned into groups, and each
/// group gets its own pair of low-rank factors.
///
/// ```
/// x: [M, in]; left: [GL, in, R] (GL = G, or 1 when shared by all groups); right: [G, R, out]
/// y[rows of g] = x[rows of g] @ left[g or 0] @ right[g] * scale            // y: [M, out]
/// backward, per group (X = x rows, H = X left, dY = g rows):
///   dRight[g] = H^T dY * scale;   dH = dY right^T * scale
///   dLeft[g] (+)= X^T dH;         dX = dH left^T
/// ```
/// A single group costs exactly two skinny matmuls and no gathering.
enum LowRankDelta {
    static func apply(_ x: Variable, left: Variable, right: Variable, rowGroups: [Int], groupCount: Int,
                      scale: Float) throws -> Variable {
        let xv = x.value, lv = left.value, rv = right.value
        let m = xv.shape[0], outF = rv.shape[2]
        let shared = lv.shape[0] == 1
        let rows = GroupRows(rowGroups: rowGroups, groupCount: groupCount)
        // Forward, remembering H per group for backward.
        var hs: [Tensor] = []
        var yParts: [Tensor] = []
        for gi in 0..<groupCount {
            let xg = rows.single ? xv : try xv.indexSelect(axis: 0, rows.members[gi])               // [Mg, in]
            let lg = try lv.selecting(axis: 0, index: shared ? 0 : gi)                              // [in, R]
            let h = try xg.matmul(lg)                                                              // [Mg, R]
            hs.append(h)
            yParts.append(try h.matmul(try rv.selecting(axis: 0, index: gi)) * scale)              // [Mg, out]
        }
        let y = rows.single ? yParts[0] : try rows.scatter(yParts, m: m, width: outF)
        return Variable.record(y, [x, left, right]) { g, needs in
            var dxParts: [Tensor] = [], dlParts: [Tensor] = [], drParts: [Tensor] = []
            for gi in 0..<groupCount {
                let gg = rows.single ? g : try g.indexSelect(axis: 0, rows.members[gi])               // [Mg, out]
                if needs[2] { drParts.append(try hs[gi].T.matmul(gg) * scale) }                    // [R, out]
                guard needs[0] || needs[1] else { continue }
                let rg = try rv.selecting(axis: 0, index: gi)                                       // [R, out]
                let dh = try gg.matmul(rg.T) * scale                                               // [Mg, R]
                if needs[1] {
                    let xg = rows.single ? xv : try xv.indexSelect(axis: 0, rows.members[gi])       // [Mg, in]
                    dlParts.append(try xg.T.matmul(dh))                                            // [in, R]
                }
                if needs[0] {
                    let lg = try lv.selecting(axis: 0, index: shared ? 0 : gi)                      // [in, R]
                    dxParts.append(try dh.matmul(lg.T))                                            // [Mg, in]
                }
            }
            var dl: Tensor?
            if needs[1] {
                if shared {
                    var acc = dlParts[0]
                    for d in dlParts.dropFirst() { try acc.add(d) }
                    dl = try acc.unsqueezed(0)
                } else {
                    dl = try Tensor.stack(dlParts, axis: 0)
                }
            }
            let dx = needs[0] ? (rows.single ? dxParts[0] : try rows.scatter(dxParts, m: m, width: xv.shape[1])) : nil
            return [dx, dl, needs[2] ? try Tensor.stack(drParts, axis: 0) : nil]
        }
    }
}

/// Row indices of each group, and the inverse scatter.
struct GroupRows {
    let members: [[Int]]
    let single: Bool

    init(rowGroups: [Int], groupCount: Int) {
        var m = [[Int]](repeating: [], count: groupCount)
        for (row, g) in rowGroups.enumerated() { m[g].append(row) }
        members = m
        single = groupCount == 1
    }

    /// Writes each group's rows back into their places: parts[g] is [Mg, width] -> [M, width].
    func scatter(_ parts: [Tensor], m: Int, width: Int) throws -> Tensor {
        var out = [Float](repeating: 0, count: m * width)
        for (g, part) in parts.enumerated() {
            let p = part.contiguous().scalars
            for (i, row) in members[g].enumerated() {
                for j in 0..<width { out[row * width + j] = p[i * width + j] }
            }
        }
        return Tensor(out, shape: [m, width])
    }
}
