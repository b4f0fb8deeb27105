import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// A routed low-rank update in the form a base `Linear` fuses into its own matmuls (Poly / MHR, and any adapter whose
/// update is `x left right` per group of rows).
///
/// ```
/// x: [..., in] flattened to [M, in];  left: [GL, in, R] (GL = 1: shared by every group);  right: [G, R, out]
/// delta(x)[row] = x[row] left[g(row)] right[g(row)] * scale                 g(row) = rowGroups[row]
/// applied(to: base, x) = x W^T + b + delta(x)      one node; the update rides on the base matmul (`GemmRowTail`)
/// ```
/// `applied` and `base(x) + delta(x)` compute the same values and gradients (tested); the fused form adds the update
/// to the base product's register tiles as they are stored and its input gradient to `dY W`'s, so no `[M, out]`
/// update, no `[M, in]` gradient and no addition exist on their own.
public struct LowRankUpdate {
    public let left: Variable
    public let right: Variable
    public let rowGroups: [Int]
    public let groupCount: Int
    public let scale: Float

    /// Checks that the factors fit each other and that every row names one of `groupCount` groups.
    public init(left: Variable, right: Variable, rowGroups: [Int], groupCount: Int, scale: Float) throws {
        let l = left.shape, r = right.shape
        guard l.count == 3, r.count == 3, l[2] == r[1], r[0] == groupCount, l[0] == 1 || l[0] == groupCount else {
            throw TensorError("low-rank update", "left \(fmt(l)) ([1 or G, in, R]) and right \(fmt(r)) ([G, R, out]) do not fit \(groupCount) groups")
        }
        if let bad = rowGroups.first(where: { !(0..<groupCount).contains($0) }) {
            throw TensorError("low-rank update", "row group \(bad) is not in 0..<\(groupCount)")
        }
        self.left = left
        self.right = right
        self.rowGroups = rowGroups
        self.groupCount = groupCount
        self.scale = scale
    }

    /// The input `x` `[..., in]` as `[M, in]`, after checking it against the factors and the rows.
    private func rows(of x: Variable) throws -> Variable {
        let inF = left.shape[1]
        guard x.shape.last == inF else { throw TensorError("low-rank update", "input \(fmt(x.shape)) does not end in \(inF)") }
        let x2 = try x.reshaped([-1, inF])
        guard x2.shape[0] == rowGroups.count else {
            throw TensorError("low-rank update", "input \(fmt(x.shape)) has \(x2.shape[0]) rows for \(rowGroups.count) row groups")
        }
        return x2
    }

    /// The update alone, `[..., out]`.
    public func delta(for x: Variable) throws -> Variable {
        let d = try LowRankDelta.apply(try rows(of: x), left: left, right: right, rowGroups: rowGroups,
                                       groupCount: groupCount, scale: scale)
        return try d.reshaped(Array(x.shape.dropLast()) + [right.shape[2]])
    }

    /// `base(x) + delta(x)` as one fused node, reading `base`'s parameters through `ctx` as `Linear.forward` does.
    public func applied(to base: Linear, _ x: Variable, _ ctx: Context) throws -> Variable {
        let y = try LowRankDelta.apply(try rows(of: x), left: left, right: right, rowGroups: rowGroups,
                                       groupCount: groupCount, scale: scale,
                                       base: .init(weight: ctx[base.weight], bias: base.bias.map { ctx[$0] }))
        return try y.reshaped(Array(x.shape.dropLast()) + [right.shape[2]])
    }
}
