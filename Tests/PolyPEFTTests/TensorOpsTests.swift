import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Elementwise, reduction and indexing ops against plain loops, on odd shapes and non-contiguous inputs.
final class TensorOpsTests: XCTestCase {
    let shapes: [[Int]] = [[1], [3], [7, 1], [8, 9], [3, 1, 33], [2, 7, 3]]

    /// Index of the broadcast source element for an output multi-index.
    func sourceIndex(_ out: [Int], _ shape: [Int]) -> [Int] {
        let lead = out.count - shape.count
        return shape.indices.map { shape[$0] == 1 ? 0 : out[lead + $0] }
    }

    func multiIndices(_ shape: [Int]) -> [[Int]] {
        var all: [[Int]] = [[]]
        for e in shape { all = all.flatMap { p in (0..<e).map { p + [$0] } } }
        return all
    }

    func element(_ t: Tensor, _ idx: [Int]) -> Float { t.storage[t.offset + zip(idx, t.strides).map { $0 * $1 }.reduce(0, +)] }

    func testBinaryBroadcastMatchesLoop() throws {
        let pairs: [([Int], [Int])] = [([3, 1, 33], [7, 1]), ([8, 9], [9]), ([2, 7, 3], [1, 7, 1]), ([1], [3, 8]), ([7, 9], [7, 9])]
        for (i, (sa, sb)) in pairs.enumerated() {
            for nc in [false, true] {
                var a = randomTensor(sa, seed: UInt64(i)), b = randomTensor(sb, seed: UInt64(100 + i), low: 0.5, high: 2)
                if nc { a = nonContiguous(a); b = nonContiguous(b) }
                let out = try Tensor.broadcastShapes(sa, sb, "t")
                for (op, f) in [("+", { (x: Float, y: Float) in x + y }), ("*", { $0 * $1 }), ("/", { $0 / $1 }), ("-", { $0 - $1 })] {
                    let r: Tensor
                    switch op { case "+": r = try a + b; case "*": r = try a * b; case "/": r = try a / b; default: r = try a - b }
                    XCTAssertEqual(r.shape, out)
                    let expected = multiIndices(out).map { f(element(a, sourceIndex($0, sa)), element(b, sourceIndex($0, sb))) }
                    XCTAssertEqual(r.scalars, expected, "\(sa) \(op) \(sb) nc=\(nc)")
                }
            }
        }
        XCTAssertThrowsError(try Tensor.zeros([2, 3]) + Tensor.zeros([4])) {
            XCTAssertEqual("\($0)", "add: shapes [2, 3] and [4] cannot be broadcast together")
        }
    }

    func testUnaryOpsMatchScalarFormulas() {
        for shape in shapes {
            let x = nonContiguous(randomTensor(shape, seed: 3, low: 0.1, high: 2))
            let v = x.scalars
            XCTAssertEqual(x.exp().scalars, v.map { _expf($0) })
            XCTAssertEqual(x.log().scalars, v.map { _logf($0) })
            XCTAssertEqual(x.sqrt().scalars, v.map { $0.squareRoot() })
            XCTAssertEqual((-x).relu().scalars, v.map { _ in 0 })
            XCTAssertEqual(x.clamped(min: 0.5, max: 1).scalars, v.map { Swift.min(Swift.max($0, 0.5), 1) })
            XCTAssertEqual((x * 2 + 1).scalars, v.map { $0 * 2 + 1 })
        }
        let s = Tensor([-100, -1, 0, 1, 100], shape: [5]).sigmoid().scalars
        XCTAssertEqual(s[2], 0.5)
        XCTAssertEqual(s[4], 1)
        XCTAssertEqual(s[0], 0, accuracy: 1e-30)
        XCTAssertEqual(Tensor([1], shape: [1]).gelu().scalars[0], 0.8413447, accuracy: 1e-6)
        XCTAssertEqual(Tensor([1], shape: [1]).gelu(approximation: .tanh).scalars[0], 0.8411920, accuracy: 1e-6)
    }

    func testReductionsMatchLoops() throws {
        let x = nonContiguous(randomTensor([3, 7, 9], seed: 5))
        for axes in [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]] {
            let s = try x.sum(axes: axes, keepDims: true)
            let m = try x.max(axes: axes)
            var expected = [Float](repeating: 0, count: s.count), emax = [Float](repeating: -.infinity, count: s.count)
            let ks = s.shape, kstr = Tensor.contiguousStrides(ks)
            for idx in multiIndices(x.shape) {
                let o = idx.enumerated().map { axes.contains($0.offset) ? 0 : $0.element }
                let flat = zip(o, kstr).map { $0 * $1 }.reduce(0, +)
                expected[flat] += element(x, idx)
                emax[flat] = Swift.max(emax[flat], element(x, idx))
            }
            assertClose(s, Tensor(expected, shape: ks), rtol: 1e-5, "sum \(axes)")
            XCTAssertEqual(m.scalars, emax, "max \(axes)")
            XCTAssertEqual(m.shape, x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
        }
        let v = try x.variance(axes: [1])
        let mean = try x.mean(axes: [1], keepDims: true)
        assertClose(v, try (x - mean).squared().sum(axes: [1]) / 7, rtol: 1e-5)
        let (am, ashape) = try x.argmax(axis: 1)
        XCTAssertEqual(ashape, [3, 9])
        for i in 0..<3 { for j in 0..<9 {
            let col = (0..<7).map { element(x, [i, $0, j]) }
            XCTAssertEqual(am[i * 9 + j], col.firstIndex(of: col.max()!)!)
        } }
        XCTAssertThrowsError(try x.sum(axes: [3])) { XCTAssertEqual("\($0)", "sum: axis 3 out of range for rank 3") }
        XCTAssertThrowsError(try x.sum(axes: [1, -2])) { XCTAssertEqual("\($0)", "sum: repeated axis in [1, -2] for [3, 7, 9]") }
    }

    func testSoftmaxLogSoftmaxLogsumexp() throws {
        let x = nonContiguous(randomTensor([4, 9], seed: 8, low: -30, high: 30))
        for axis in [0, 1] {
            let sm = try x.softmax(axis: axis), lsm = try x.logSoftmax(axis: axis)
            assertClose(try sm.sum(axes: [axis]), Tensor.ones([axis == 0 ? 9 : 4]), rtol: 1e-5)
            assertClose(lsm.exp(), sm, rtol: 1e-4, atol: 1e-7)
            let lse = try x.logsumexp(axis: axis, keepDims: true)
            assertClose(try x - lse, lsm, rtol: 1e-5, atol: 1e-5)
        }
    }

    /// Above `Parallel.elementwiseThreshold` the rows are split among threads: the same values on 1 and 2 threads
    /// (each row is computed the same way), and they match a Double reference, along either axis.
    func testSoftmaxRowsSplitAmongThreads() throws {
        let x = randomTensor([301, 257], seed: 30, low: -20, high: 20)
        XCTAssertGreaterThanOrEqual(x.count, Parallel.elementwiseThreshold)
        for axis in [0, 1] {
            let (one, oneLog) = try Parallel.$threadLimit.withValue(1) { (try x.softmax(axis: axis), try x.logSoftmax(axis: axis)) }
            let (two, twoLog) = try Parallel.$threadLimit.withValue(2) { (try x.softmax(axis: axis), try x.logSoftmax(axis: axis)) }
            XCTAssertEqual(one.scalars, two.scalars, "axis \(axis)")
            XCTAssertEqual(oneLog.scalars, twoLog.scalars, "axis \(axis)")
            let (rows, cols) = axis == 1 ? (301, 257) : (257, 301)
            var want = [Float](repeating: 0, count: x.count)                      // log-softmax in Double
            for r in 0..<rows {
                let at = { (j: Int) in axis == 1 ? r * 257 + j : j * 257 + r }
                let v = (0..<cols).map { Double(x.scalars[at($0)]) }
                let m = v.max()!, lse = m + Foundation.log(v.reduce(0) { $0 + Foundation.exp($1 - m) })
                for j in 0..<cols { want[at(j)] = Float(v[j] - lse) }
            }
            assertClose(oneLog, Tensor(want, shape: [301, 257]), rtol: 1e-5, atol: 1e-5, "axis \(axis)")
        }
    }

    func testIndexSelectIndexAddGather() throws {
        let w = nonContiguous(randomTensor([5, 3], seed: 9))
        let ids = [4, 0, 4, 2]
        let e = try w.indexSelect(axis: 0, ids)
        XCTAssertEqual(e.shape, [4, 3])
        for (i, id) in ids.enumerated() { for j in 0..<3 { XCTAssertEqual(e[i, j], w[id, j]) } }
        let cols = try w.indexSelect(axis: 1, [2, 2])
        XCTAssertEqual(cols.scalars, (0..<5).flatMap { [w[$0, 2], w[$0, 2]] })
        let acc = try Tensor.zeros([5, 3]).indexAdd(axis: 0, ids, Tensor.ones([4, 3]))
        XCTAssertEqual(acc.scalars, [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 2])
        XCTAssertThrowsError(try w.indexSelect(axis: 0, [5])) {
            XCTAssertEqual("\($0)", "index_select: index 5 at position 0 out of range 0..<5 for axis 0 of [5, 3]")
        }
        XCTAssertThrowsError(try w.indexSelect(axis: 0, [-1]))
        let g = try w.gather(axis: 1, index: [2, 0, 1, 1, 0], shape: [5, 1])
        XCTAssertEqual(g.scalars, [w[0, 2], w[1, 0], w[2, 1], w[3, 1], w[4, 0]])
    }

    func testConcatSplitStackWhere() throws {
        let a = randomTensor([2, 3], seed: 1), b = nonContiguous(randomTensor([2, 5], seed: 2))
        let c = try Tensor.concatenate([a, b], axis: 1)
        XCTAssertEqual(c.shape, [2, 8])
        let (av, bv) = (a.scalars, b.scalars)
        var expected: [Float] = Array(av[0..<3])
        expected += bv[0..<5]
        expected += av[3..<6]
        expected += bv[5..<10]
        XCTAssertEqual(c.scalars, expected)
        let parts = try c.split(sizes: [3, 5], axis: 1)
        XCTAssertEqual(parts[0], a)
        XCTAssertEqual(parts[1], b)
        XCTAssertThrowsError(try c.split(sizes: [3, 4], axis: 1)) {
            XCTAssertEqual("\($0)", "split: sizes [3, 4] do not add up to extent 8 of axis 1 in [2, 8]")
        }
        XCTAssertThrowsError(try Tensor.concatenate([a, b], axis: 0)) {
            XCTAssertEqual("\($0)", "concat: shapes [2, 3] and [2, 5] differ outside axis 0")
        }
        let s = try Tensor.stack([a, a], axis: 1)
        XCTAssertEqual(s.shape, [2, 2, 3])
        let w = try Tensor.where(a.greater(0), a, Tensor(scalar: 0))
        XCTAssertEqual(w, a.relu())
    }

    func testReducedToShapeInvertsBroadcast() throws {
        let g = randomTensor([4, 3, 5], seed: 11)
        let r = try g.reduced(toShape: [3, 1])
        assertClose(r, try g.sum(axes: [0, 2]).reshaped([3, 1]), rtol: 1e-5)
        XCTAssertThrowsError(try g.reduced(toShape: [2, 5]))
    }
}
