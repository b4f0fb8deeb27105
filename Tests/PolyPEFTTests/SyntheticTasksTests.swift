import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

final class SyntheticTasksTests: XCTestCase {
    /// A smaller configuration so the tests run in milliseconds.
    static func small(seed: UInt64 = 7) -> SyntheticTasks.Configuration {
        var c = SyntheticTasks.Configuration()
        c.seed = seed
        c.trainSamplesPerTask = 16
        c.validationSamplesPerTask = 4
        c.testSamplesPerTask = 8
        c.fewShotPoolSize = 10
        c.heldOutTestSamplesPerTask = 6
        return c
    }

    func testDeterminismAndSeedDependence() throws {
        let a = try SyntheticTasks(Self.small(seed: 7)), b = try SyntheticTasks(Self.small(seed: 7))
        XCTAssertEqual(a.train, b.train)
        XCTAssertEqual(a.heldOutTest, b.heldOutTest)
        XCTAssertEqual(a.baseWeights, b.baseWeights)
        XCTAssertEqual(a.trainTaskSkills, b.trainTaskSkills)
        let c = try SyntheticTasks(Self.small(seed: 8))
        XCTAssertNotEqual(a.train.inputs, c.train.inputs)
        XCTAssertNotEqual(a.baseWeights["fc1.weight"], c.baseWeights["fc1.weight"])
        // Splits use their own streams: changing the train size leaves the test split unchanged.
        var bigger = Self.small(seed: 7)
        bigger.trainSamplesPerTask = 20
        let d = try SyntheticTasks(bigger)
        XCTAssertEqual(d.test, a.test)
        XCTAssertNotEqual(a.train.input(at: 0), a.validation.input(at: 0))
    }

    func testShapesAndNames() throws {
        let s = try SyntheticTasks(Self.small())
        XCTAssertEqual(Set(s.baseWeights.keys), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        XCTAssertEqual(s.baseWeights["fc1.weight"]!.shape, [64, 32])
        XCTAssertEqual(s.baseWeights["fc1.bias"]!.shape, [64])
        XCTAssertEqual(s.baseWeights["fc2.weight"]!.shape, [8, 64])
        XCTAssertEqual(s.baseWeights["fc2.bias"]!.shape, [8])
        XCTAssertEqual(s.train.inputs.shape, [18 * 16, 32])
        XCTAssertEqual(s.train.targets.shape, [18 * 16, 8])
        XCTAssertEqual(s.validation.count, 18 * 4)
        XCTAssertEqual(s.test.count, 18 * 8)
        XCTAssertEqual(s.fewShotPool.inputs.shape, [4 * 10, 32])
        XCTAssertEqual(s.heldOutTest.targets.shape, [4 * 6, 8])
        XCTAssertEqual(s.taskNames.first, "task00")
        XCTAssertEqual(s.taskNames.last, "task17")
        XCTAssertEqual(s.heldOutTaskNames, ["heldout0", "heldout1", "heldout2", "heldout3"])
        XCTAssertEqual(s.train.tasks, Array(0..<18))
        XCTAssertEqual(s.train.indices(ofTask: 3).count, 16)
        XCTAssertEqual(s.fewShotPool.taskNames, s.heldOutTaskNames)
        XCTAssertEqual(s.skillFactors[0]["fc1.U"]!.shape, [64, 2])
        XCTAssertEqual(s.skillFactors[0]["fc2.V"]!.shape, [2, 64])
    }

    func testAllocationProperties() throws {
        for seed in [UInt64(0), 1, 2, 3] {
            let s = try SyntheticTasks(Self.small(seed: seed))
            let a = s.trueAllocation
            XCTAssertEqual(a.count, 18)
            XCTAssertTrue(a.allSatisfy { $0.count == 6 && (1...3).contains(Int($0.reduce(0, +))) })
            for k in 0..<6 {
                XCTAssertTrue(s.trainTaskSkills.contains([k]), "skill \(k) has no single-skill task")
            }
            XCTAssertEqual(Set(s.trainTaskSkills).count, 18, "training tasks are not distinct")
            XCTAssertEqual(Set(s.heldOutTaskSkills).count, 4)
            for h in s.heldOutTaskSkills {
                XCTAssertFalse(s.trainTaskSkills.contains(h), "held-out set \(h) is a training set")
                XCTAssertTrue((2...3).contains(h.count))
            }
            XCTAssertEqual(s.heldOutAllocation.map { $0.reduce(0, +) }, s.heldOutTaskSkills.map { Float($0.count) })
        }
    }

    func testSkillChangesAreNoticeableButModerate() throws {
        let s = try SyntheticTasks(Self.small())
        for layer in ["fc1", "fc2"] {
            let w = SyntheticMLP.frobenius(s.baseWeights["\(layer).weight"]!.scalars)
            let d = SyntheticMLP.frobenius(SyntheticMLP.product(s.skillFactors[2]["\(layer).U"]!, s.skillFactors[2]["\(layer).V"]!))
            XCTAssertEqual(d / w, 0.5, accuracy: 1e-3)
        }
    }

    func testTargetsDependOnSkills() throws {
        let s = try SyntheticTasks(Self.small())
        let x = s.test.input(at: 0)
        let base = s.baseOutput(x), a = s.output(x, skills: [0]), b = s.output(x, skills: [1])
        func dist(_ u: [Float], _ v: [Float]) -> Float { zip(u, v).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }
        let norm = dist(base, [Float](repeating: 0, count: 8))
        XCTAssertGreaterThan(dist(a, b), 0.1 * norm)
        XCTAssertGreaterThan(dist(a, base), 0.1 * norm)
        // Targets are the task's function plus small noise, and far from the base output on average.
        var noiseSq: Float = 0, skillSq: Float = 0, baseSq: Float = 0
        for i in 0..<s.test.count {
            let xi = s.test.input(at: i), yi = s.test.target(at: i)
            let f = s.output(xi, skills: s.trainTaskSkills[s.test.taskIDs[i]]), f0 = s.baseOutput(xi)
            noiseSq += dist(yi, f) * dist(yi, f)
            skillSq += dist(yi, f0) * dist(yi, f0)
            baseSq += dist(f0, [Float](repeating: 0, count: 8)) * dist(f0, [Float](repeating: 0, count: 8))
        }
        let n = Float(s.test.count * 8)
        XCTAssertEqual((noiseSq / n).squareRoot(), 0.01, accuracy: 0.002)
        XCTAssertGreaterThan(skillSq / baseSq, 0.05)
        XCTAssertLessThan(skillSq / baseSq, 2)
    }

    func testAverageFactorsDiffersFromAverageDeltasOnlyForMultiSkillTasks() throws {
        var c = Self.small()
        let d = try SyntheticTasks(c)
        c.composition = .averageFactors
        let f = try SyntheticTasks(c)
        let x = d.test.input(at: 0)
        XCTAssertEqual(d.output(x, skills: [3]), f.output(x, skills: [3]))
        XCTAssertNotEqual(d.output(x, skills: [1, 3]), f.output(x, skills: [1, 3]))
    }

    func testInvalidConfigurationsThrow() {
        var c = Self.small()
        c.nTrainTasks = 4
        XCTAssertThrowsError(try SyntheticTasks(c)) { e in
            XCTAssertEqual("\(e)", "synthetic tasks: n_train_tasks (4) must be at least n_skills (6) so every skill has a single-skill task")
        }
        c = Self.small()
        c.nSkills = 3
        c.nTrainTasks = 6
        XCTAssertThrowsError(try SyntheticTasks(c)) { e in
            XCTAssertEqual("\(e)", "synthetic tasks: 3 multi-skill training tasks + 4 held-out tasks exceed the 4 distinct sets of 2-3 of 3 skills")
        }
    }

    func testDatasetHelpers() throws {
        let s = try SyntheticTasks(Self.small())
        let sub = s.train.subset([5, 17, 5])
        XCTAssertEqual(sub.count, 3)
        XCTAssertEqual(sub.input(at: 2), s.train.input(at: 5))
        XCTAssertEqual(sub.taskIDs, [0, 1, 0])
        var r1 = Xoshiro256(seed: 3), r2 = Xoshiro256(seed: 3)
        let b1 = s.train.batches(size: 50, using: &r1), b2 = s.train.batches(size: 50, using: &r2)
        XCTAssertEqual(b1, b2)
        XCTAssertEqual(b1.map(\.count), [50, 50, 50, 50, 50, 38])
        XCTAssertEqual(b1.flatMap { $0 }.sorted(), Array(0..<288))
        XCTAssertNotEqual(b1.flatMap { $0 }, Array(0..<288))
        var r3 = Xoshiro256(seed: 3)
        XCTAssertEqual(s.train.batches(size: 50, dropLast: true, using: &r3).count, 5)
        XCTAssertEqual(s.train.indicesByTask[2], Array(32..<48))
        XCTAssertThrowsError(try MultitaskDataset(inputs: .zeros([2, 3]), targets: .zeros([2, 1]), taskIDs: [0, 1], taskNames: ["a"])) { e in
            XCTAssertEqual("\(e)", "sample 1 has task id 1, but only 1 task names")
        }
        let all = try MultitaskDataset.concatenating([s.train, s.validation])
        XCTAssertEqual(all.count, s.train.count + s.validation.count)
        XCTAssertEqual(all.target(at: s.train.count), s.validation.target(at: 0))
    }
}
