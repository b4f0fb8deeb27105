import PolyPEFTCore
import PolyPEFTIO

/// Inverted dropout, active only in training mode, drawing its mask from the context's generator.
public final class Dropout: Module, Layer {
    public let p: Float
    public init(_ p: Float) {
        self.p = p
        super.init()
    }
    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        guard ctx.isTraining && p > 0 else { return x }
        return try x.dropout(p: p, using: &ctx.rng)
    }
}
