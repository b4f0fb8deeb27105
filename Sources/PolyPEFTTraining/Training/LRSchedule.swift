import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// Learning-rate schedules as a multiplier of each group's base rate at a given step (0-based).
///
/// ```
/// constant:           1
/// warmup (w steps):   (step + 1) / w                              for step < w
/// then linear:        (total - step) / (total - w)                 clamped to [0, 1]
/// then cosine:        0.5 (1 + cos(pi (step - w) / (total - w)))
/// ```
public enum LRSchedule: Equatable, Sendable, Codable {
    case constant
    case linear(warmupSteps: Int, totalSteps: Int)
    case cosine(warmupSteps: Int, totalSteps: Int)

    public func multiplier(step: Int) -> Float {
        switch self {
        case .constant:
            return 1
        case let .linear(w, total), let .cosine(w, total):
            if step < w { return Float(step + 1) / Float(w) }
            let span = Swift.max(total - w, 1)
            let progress = Swift.min(Swift.max(Float(step - w) / Float(span), 0), 1)
            if case .linear = self { return 1 - progress }
            return 0.5 * (1 + Float(_cos(Double.pi * Double(progress))))
        }
    }
}
