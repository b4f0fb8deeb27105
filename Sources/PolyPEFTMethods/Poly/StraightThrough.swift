import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The straight-through estimator for hard 0/1 routing (Bengio et al. 2013; mttl's `module_logits_straight_through`):
///
/// ```
/// forward:  y = round(p) = 1 if p > 0.5 else 0        // p: routing probabilities in [0, 1]
/// backward: dp = dy                                  // as if y = p (torch: p + (round(p) - p).detach())
/// ```
/// At exactly 0.5 the forward gives 0, as `torch.round` (half to even).
public enum StraightThrough {
    public static func round(_ p: Variable) -> Variable {
        Variable.record(p.value.map { $0 > 0.5 ? 1 : 0 }, [p]) { g, _ in [g] }
    }
}
