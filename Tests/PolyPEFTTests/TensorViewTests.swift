import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class TensorViewTests: XCTestCase {
    /// A tensor whose element at flat index i is i, for easy checks.
    func iota(_ shape: [Int]) -> Tensor {
        Tensor((0..<Tensor.elementCount(shape)).map(Float.init), shape: shape)
    }

    func testContiguousStridesAndScalars() {
        let t = iota([2, 3, 4])
        XCTAssertEqual(t.strides, [12, 4, 1])
        XCTAssertTrue(t.isContiguous)
        XCTAssertEqual(t[1, 2, 3], 23)
        XCTAssertEqual(Tensor(scalar: 5).count, 1)
    }

    func testPermuteMatchesLoop() throws {
        for shape in [[1, 3, 7], [3, 8, 9], [2, 33, 1]] {
            let t = iota(shape)
            let p = try t.permuted([2, 0, 1])
            XCTAssertEqual(p.shape, [shape[2], shape[0], shape[1]])
            XCTAssertFalse(p.isContiguous && shape[2] > 1 && shape[0] * shape[1] > 1)
            var expected: [Float] = []
            for k in 0..<shape[2] { for i in 0..<shape[0] { for j in 0..<shape[1] { expected.append(t[i, j, k]) } } }
            XCTAssertEqual(p.scalars, expected)
            XCTAssertEqual(p.contiguous().scalars, expected)
        }
    }

    func testSliceWithStepAndNegativeBounds() throws {
        let t = iota([9, 3])
        let s = try t.sliced(axis: 0, start: 1, end: -1, step: 3)   // rows 1, 4, 7
        XCTAssertEqual(s.shape, [3, 3])
        XCTAssertEqual(s.scalars, [3, 4, 5, 12, 13, 14, 21, 22, 23])
        let e = try t.sliced(axis: 1, start: 5)
        XCTAssertEqual(e.shape, [9, 0])
        XCTAssertThrowsError(try t.sliced(axis: 2)) { XCTAssertEqual("\($0)", "slice: axis 2 out of range for rank 2") }
    }

    func testReshapeViewAndCopy() throws {
        let t = iota([4, 6])
        let r = try t.reshaped([2, -1, 3])
        XCTAssertEqual(r.shape, [2, 4, 3])
        XCTAssertEqual(r.scalars, t.scalars)
        // A transposed tensor cannot be flattened as a view: reshape copies and keeps logical order.
        let tt = try t.transposed()
        let flat = try tt.reshaped([-1])
        XCTAssertEqual(flat.scalars, tt.scalars)
        XCTAssertThrowsError(try t.reshaped([5, 5])) {
            XCTAssertEqual("\($0)", "reshape: cannot reshape [4, 6] (24 elements) into [5, 5]")
        }
    }

    func testExpandSqueezeUnsqueeze() throws {
        let t = iota([3, 1])
        let e = try t.expanded(to: [2, 3, 4])
        XCTAssertEqual(e.strides, [0, 1, 0])
        XCTAssertEqual(e[1, 2, 3], 2)
        XCTAssertEqual(try t.squeezed().shape, [3])
        XCTAssertEqual(try t.unsqueezed(0).shape, [1, 3, 1])
        XCTAssertEqual(try t.unsqueezed(-1).shape, [3, 1, 1])
        XCTAssertThrowsError(try t.expanded(to: [3, 2, 2])) {
            XCTAssertEqual("\($0)", "expand: cannot expand [3, 1] to [3, 2, 2]")
        }
        XCTAssertThrowsError(try Tensor.broadcastShapes([2, 3], [4], "add")) {
            XCTAssertEqual("\($0)", "add: shapes [2, 3] and [4] cannot be broadcast together")
        }
    }

    func testCopyOnWriteViewsDoNotAlias() throws {
        let t = iota([2, 2])
        var v = try t.reshaped([4])
        v[0] = 100
        XCTAssertEqual(t[0, 0], 0)
        XCTAssertEqual(v[0], 100)
        // Writing through a broadcast view materialises it.
        var b = try iota([2]).expanded(to: [3, 2])
        b[1, 1] = 9
        XCTAssertEqual(b.scalars, [0, 1, 0, 9, 0, 1])
    }

    func testSeededRandomIsReproducible() {
        var g1 = Xoshiro256(seed: 7), g2 = Xoshiro256(seed: 7)
        XCTAssertEqual(Tensor.normal([5], using: &g1), Tensor.normal([5], using: &g2))
        let u = Tensor.uniform([1000], low: -2, high: 3, using: &g1).scalars
        XCTAssertTrue(u.allSatisfy { $0 >= -2 && $0 < 3 })
        let n = Tensor.normal([20000], mean: 1, std: 2, using: &g1).scalars
        let mean = n.reduce(0, +) / Float(n.count)
        XCTAssertEqual(mean, 1, accuracy: 0.06)
    }

    /// xoshiro256** from a known state gives the reference algorithm's words (computed by hand from its definition),
    /// and the generator round-trips through JSON as `{"state": [4 words]}`; a wrong word count is an error.
    func testXoshiroStreamAndCodableState() throws {
        var g = Xoshiro256(seed: 0)
        g.state = [1, 2, 3, 4]
        XCTAssertEqual(g.next(), 11520)                     // rotl(2 * 5, 7) * 9
        XCTAssertEqual(g.state, [7, 0, 262146, 211106232532992])
        let data = try JSONEncoder().encode(g)
        XCTAssertEqual(String(decoding: data, as: UTF8.self), #"{"state":[7,0,262146,211106232532992]}"#)
        var back = try JSONDecoder().decode(Xoshiro256.self, from: data)
        XCTAssertEqual(back, g)
        XCTAssertEqual(back.next(), g.next())
        XCTAssertThrowsError(try JSONDecoder().decode(Xoshiro256.self, from: Data(#"{"state":[1,2,3]}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("xoshiro256 state needs 4 words, got 3"), "\($0)")
        }
    }
}
