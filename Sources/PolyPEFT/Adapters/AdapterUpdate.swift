/// What an adapter adds to its base layer's output in one call (`AdapterLayer.update`).
public enum AdapterUpdate {
    /// A dense update, the shape of the base output, added to it.
    case dense(Variable)
    /// A routed low-rank update that the base layer fuses into its own matmuls.
    case lowRank(LowRankUpdate)

    /// The update as a dense value for the input `x`.
    public func dense(for x: Variable) throws -> Variable {
        switch self {
        case .dense(let d): return d
        case .lowRank(let u): return try u.delta(for: x)
        }
    }
}
