import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Deterministic random tensor for tests.
func randomTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
    var g = Xoshiro256(seed: seed)
    return Tensor.uniform(shape, low: low, high: high, using: &g)
}

/// A non-contiguous tensor with the same logical values as `t`: built transposed, then transposed back as a view.
func nonContiguous(_ t: Tensor) -> Tensor {
    guard t.rank >= 2 else {
        // Every other element of a twice-as-long buffer.
        var data = [Float](repeating: -999, count: t.count * 2)
        for (i, v) in t.scalars.enumerated() { data[2 * i] = v }
        return Tensor(storage: data, shape: t.shape, strides: [2], offset: 0)
    }
    let tt = try! t.transposed().contiguous()
    return try! tt.transposed()
}

/// Asserts elementwise closeness: |a - b| <= atol + rtol * |b|.
func assertClose(_ a: Tensor, _ b: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "shape " + message, file: file, line: line)
    guard a.shape == b.shape else { return }
    let x = a.scalars, y = b.scalars
    var worst: Float = 0, at = -1
    for i in 0..<x.count {
        let excess = Swift.abs(x[i] - y[i]) - (atol + rtol * Swift.abs(y[i]))
        if excess > worst || (x[i].isNaN != y[i].isNaN) { worst = Swift.max(excess, 1); at = i }
    }
    if at >= 0 {
        XCTFail("\(message) mismatch at \(at): \(x[at]) vs \(y[at])", file: file, line: line)
    }
}

/// Finite-difference check of every input's gradient for `f`, with loss = sum(f(inputs) * cotangent).
///
/// Float32 central differences, step 1e-2, relative tolerance 1e-2 (the project's standard).
func gradCheck(_ inputs: [Tensor], step: Float = 1e-2, rtol: Float = 1e-2, seed: UInt64 = 99,
               file: StaticString = #filePath, line: UInt = #line,
               _ f: ([Variable]) throws -> Variable) throws {
    let probe = try f(inputs.map { Variable($0) })
    let cot = randomTensor(probe.shape, seed: seed)
    func loss(_ xs: [Tensor]) throws -> Double {
        let y = try f(xs.map { Variable($0) }).value
        let a = y.scalars, c = cot.scalars
        var s = 0.0
        for i in 0..<a.count { s += Double(a[i]) * Double(c[i]) }
        return s
    }
    let vars = inputs.map { Variable($0, requiresGrad: true) }
    let out = try f(vars)
    try (try out * Variable(cot)).sum().backward()
    for (k, x) in inputs.enumerated() {
        let analytic = vars[k].grad ?? Tensor.zeros(x.shape)
        var numeric = [Float](repeating: 0, count: x.count)
        var base = x.contiguous()
        for i in 0..<x.count {
            let orig = base.storage[i]
            base.storage[i] = orig + step
            var xs = inputs; xs[k] = base
            let up = try loss(xs)
            base.storage[i] = orig - step
            xs[k] = base
            let down = try loss(xs)
            base.storage[i] = orig
            numeric[i] = Float((up - down) / (2 * Double(step)))
        }
        let n = Tensor(numeric, shape: x.shape)
        let scale = numeric.map { Swift.abs($0) }.max() ?? 0
        assertClose(analytic, n, rtol: rtol, atol: rtol * Swift.max(scale, 1e-3) * 0.1, "gradient of input \(k)",
                    file: file, line: line)
    }
}

/// Finite-difference check of the gradients that `backward()` leaves in `params`, for loss = sum(f() * cotangent).
/// `f` must read the parameters' current values (it is re-run with each element nudged).
func paramGradCheck(_ params: [Parameter], step: Float = 1e-2, rtol: Float = 1e-2, seed: UInt64 = 77,
                    file: StaticString = #filePath, line: UInt = #line, _ f: () throws -> Variable) throws {
    let probe = try f()
    let cot = randomTensor(probe.shape, seed: seed)
    func loss() throws -> Double {
        let y = try f().value.scalars, c = cot.scalars
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(c[i]) }
        return s
    }
    for p in params { p.zeroGrad() }
    try (try f() * Variable(cot)).sum().backward()
    for (k, p) in params.enumerated() {
        let analytic = p.grad ?? Tensor.zeros(p.value.shape)
        var numeric = [Float](repeating: 0, count: p.count)
        let original = p.value.contiguous()
        for i in 0..<p.count {
            var v = original
            v.storage[i] += step
            p.value = v
            let up = try loss()
            v.storage[i] -= 2 * step
            p.value = v
            let down = try loss()
            numeric[i] = Float((up - down) / (2 * Double(step)))
        }
        p.value = original
        let scale = numeric.map { Swift.abs($0) }.max() ?? 0
        assertClose(analytic, Tensor(numeric, shape: p.value.shape), rtol: rtol, atol: rtol * Swift.max(scale, 1e-3) * 0.1,
                    "gradient of parameter \(k)", file: file, line: line)
    }
}

/// Two sequences of five tokens (the second padded from position 3), their padding mask and token types: the batch the
/// BERT, hook and prefix tests share (token ids below 17, the tiny BERT's vocabulary).
enum TokenBatchFixture {
    static let ids = [[2, 5, 7, 9, 3], [2, 11, 4, 0, 0]]
    static let mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    static let types = [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
}

extension SafetensorsFile {
    /// A rank-2 integer tensor as rows (token ids, masks, token types of a golden case's inputs).
    func intRows(_ key: String) throws -> [[Int]] {
        let (values, shape) = try intTensor(key)
        guard shape.count == 2 else { throw ModuleError("\(key): expected a matrix, got shape \(shape)") }
        return (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    }
}

/// The vector levels this CPU can run (`.baseline`, and `.avx512` where the CPU has it), each in a scope of its own,
/// so that a test of a kernel checks every variant the machine has.
func forEachSIMDLevel(_ body: (SIMDLevel) throws -> Void) rethrows {
    for level in [SIMDLevel.baseline, .avx512] where level <= SIMDLevel.detected {
        try SIMDLevel.$limit.withValue(level) { try body(level) }
    }
}

/// `actual` against a golden `expected` at relative tolerance `rtol` of the golden's largest magnitude.
func assertGolden(_ actual: Tensor, _ expected: Tensor, rtol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    let scale = expected.scalars.map { Swift.abs($0) }.max() ?? 0
    assertClose(actual, expected, rtol: rtol, atol: rtol * Swift.max(scale, 1e-6), what, file: file, line: line)
}
