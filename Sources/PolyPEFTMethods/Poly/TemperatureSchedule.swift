import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// An annealing schedule for the relaxed-Bernoulli temperature of Poly routers (apply it each step with
/// `PeftModel.setRoutingTemperature(_:)`):
///
/// ```
/// constant(t):                 T(step) = t
/// linear(from a, to b, steps n):      T(step) = a + (b - a) * min(step, n) / n
/// exponential(from a, to b, steps n): T(step) = a * (b / a)^(min(step, n) / n)      (geometric; a, b > 0)
/// ```
/// A low temperature makes relaxed-Bernoulli samples nearly 0/1 (closer to the discrete allocation); annealing from 1
/// towards e.g. 0.1 is the usual use.
public enum TemperatureSchedule: Equatable, Sendable {
    case constant(Float)
    case linear(from: Float, to: Float, steps: Int)
    case exponential(from: Float, to: Float, steps: Int)

    /// Checks that every temperature the schedule yields is positive and finite.
    public func validate() throws {
        let ends: [Float]
        let steps: Int
        switch self {
        case .constant(let t): ends = [t]; steps = 1
        case let .linear(a, b, n), let .exponential(a, b, n): ends = [a, b]; steps = n
        }
        guard ends.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw PolyError("temperature schedule: temperatures must be positive, got \(ends)")
        }
        guard steps >= 1 else { throw PolyError("temperature schedule: steps must be at least 1, got \(steps)") }
    }

    /// The temperature at `step` (0-based).
    public func temperature(step: Int) -> Float {
        switch self {
        case .constant(let t):
            return t
        case let .linear(a, b, n):
            return a + (b - a) * progress(step, n)
        case let .exponential(a, b, n):
            return a * _powf(b / a, progress(step, n))
        }
    }

    private func progress(_ step: Int, _ n: Int) -> Float {
        Float(Swift.min(Swift.max(step, 0), Swift.max(n, 1))) / Float(Swift.max(n, 1))
    }
}
