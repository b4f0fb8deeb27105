import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// `RelaxedBernoulli.sampleOne` against PyTorch's formula with every clamp, the clamp decisions made on Float values
/// as torch makes them and the rest in Double (where the probability is not clamped, `log p - log1p(-p)` is `L`
/// exactly; torch's Float evaluation of it loses up to 1e-3 relative at |L| ~ 10, which `sampleOne` avoids), across
/// the range where the probability clamp switches on (|L| near 16) and at the uniform's ends.
final class RelaxedBernoulliTests: XCTestCase {
    func reference(_ l: Float, _ u: Float) -> (y: Float, clamped: Bool) {
        let eps = Float.ulpOfOne, tiny = Float.leastNormalMagnitude
        let p0 = Tensor.sigmoid(l)
        let p = Swift.min(Swift.max(p0, eps), 1 - eps)
        let uc = Double(Swift.min(Swift.max(u, eps), 1 - eps))
        let logitP = p == p0 ? Double(l) : Foundation.log(Double(p) / (1 - Double(p)))
        let z = Foundation.log(uc / (1 - uc)) + logitP
        let s = Float(1 / (1 + Foundation.exp(-z)))
        let y = Swift.min(Swift.max(s, tiny), 1 - eps)
        return (y, p != p0 || y != s)
    }

    func testMatchesTheClampedFormula() {
        var logits: [Float] = stride(from: Float(-20), through: 20, by: 0.0625).map { $0 }
        logits += [-88, -30, -16.0001, -15.9999, -15.0001, 15.0001, 15.9999, 16.0001, 30, 88]
        for l in logits { for u: Float in [0, 1e-9, 0.25, 0.5, 0.9, 1 - 1e-7] {
            let got: (y: Float, dydl: Float) = RelaxedBernoulli.sampleOne(logit: l, uniform: u, temperature: 1)
            let want: (y: Float, clamped: Bool) = reference(l, u)
            let label = "L \(l) u \(u)"
            XCTAssertEqual(got.y, want.y, accuracy: Float(2e-6), label)
            XCTAssertEqual(got.dydl, want.clamped ? 0 : got.y * (1 - got.y), accuracy: Float(1e-6), label)
        } }
    }
}
