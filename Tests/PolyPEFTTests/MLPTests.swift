import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// `MLP` from op lists whose linear names are dotted paths (`block.mix`), as PyTorch would nest them.
final class MLPTests: XCTestCase {
    /// relu(mix) -> tanh(out) -> head, with the first two layers named as given.
    func makeMLP(mix: String, out: String, seed: UInt64 = 3) throws -> MLP {
        var g = Xoshiro256(seed: seed)
        return try MLP([.linear(name: mix, inFeatures: 3, outFeatures: 4, bias: true), .activation(.relu),
                        .linear(name: out, inFeatures: 4, outFeatures: 5, bias: false), .activation(.tanh),
                        .linear(name: "head", inFeatures: 5, outFeatures: 2, bias: true)], using: &g)
    }

    func makeNested(seed: UInt64 = 3) throws -> MLP { try makeMLP(mix: "block.mix", out: "block.out", seed: seed) }

    func makeFlat(seed: UInt64 = 3) throws -> MLP { try makeMLP(mix: "mix", out: "out", seed: seed) }

    func testDottedNamesBuildNestedModules() throws {
        let m = try makeNested()
        XCTAssertEqual(m.namedModules().map(\.path), ["", "block", "block.mix", "block.out", "act1", "act3", "head"])
        XCTAssertTrue(type(of: m.module(at: "block")!) == Module.self, "the intermediate is a plain Module")
        XCTAssertTrue(m.module(at: "block.mix") is Linear)
        XCTAssertEqual(m.inputWidth, 3)
    }

    func testStateDictNamesAreDottedPaths() throws {
        let m = try makeNested()
        XCTAssertEqual(m.namedParameters().map(\.name),
                       ["block.mix.weight", "block.mix.bias", "block.out.weight", "head.weight", "head.bias"])
        let values = Dictionary(uniqueKeysWithValues: m.namedParameters().enumerated().map { i, p in
            (p.name, randomTensor(p.parameter.value.shape, seed: 40 + UInt64(i)))
        })
        let other = try makeNested(seed: 9)
        try other.loadStateDict(values)
        XCTAssertEqual(other.stateDict(), values)
    }

    /// The same weights in a flat and a nested tree compute the same function, ops in list order.
    func testForwardEqualsFlatEquivalent() throws {
        let flat = try makeFlat(), nested = try makeNested(seed: 11)
        var renamed: [String: Tensor] = [:]
        for (name, value) in flat.stateDict() { renamed[name.hasPrefix("head") ? name : "block." + name] = value }
        try nested.loadStateDict(renamed)
        let x = Variable(randomTensor([6, 3], seed: 5))
        XCTAssertEqual(try nested.forward(x, Context.inference()).value, try flat.forward(x, Context.inference()).value)
    }

    /// PEFT's `target_modules` reach a nested layer by its last name or its whole path.
    func testTargetModulesReachNestedLinear() throws {
        for targets in [["mix"], ["block.mix"]] {
            let m = try makeNested()
            let x = Variable(randomTensor([6, 3], seed: 5))
            let before = try m.forward(x, Context.inference()).value
            var g = Xoshiro256(seed: 2)
            let peft = try PeftModel(wrapping: m, config: LoraConfig(r: 2, loraAlpha: 2, targetModules: .names(targets)), using: &g)
            XCTAssertEqual(peft.adapters.map(\.path), ["block.mix"])
            XCTAssertTrue(m.module(at: "block.mix") is LoRALinear)
            XCTAssertTrue(m.stateDict().keys.contains("block.mix.base_layer.weight"))
            // LoRA's B starts at zero: the adapted network computes what the base did.
            XCTAssertEqual(try m.forward(x, Context.inference()).value, before)
        }
    }

    func testConflictingNamesThrow() {
        func build(_ names: [String]) throws {
            var g = Xoshiro256(seed: 1)
            var ops: [MLP.Op] = []
            for name in names {
                if name == "relu" { ops.append(.activation(.relu)) } else { ops.append(.linear(name: name, inFeatures: 2, outFeatures: 2, bias: true)) }
            }
            _ = try MLP(ops, using: &g)
        }
        let cases: [([String], String)] = [
            (["block.mix", "block.mix"], "MLP: duplicate layer name 'block.mix'"),
            (["fc1", "fc1.x"], "MLP: layer 'fc1.x' would sit inside layer 'fc1'"),
            (["block.mix", "block"], "MLP: layer 'block' has the name of the module holding 'block.*'"),
            (["act1", "relu"], "MLP: duplicate layer name 'act1'"),
            (["a..b"], "MLP: layer name 'a..b' has an empty part"),
            ([".a"], "MLP: layer name '.a' has an empty part"),
        ]
        for (names, message) in cases {
            XCTAssertThrowsError(try build(names), "\(names)") { XCTAssertEqual($0 as? ModuleError, ModuleError(message)) }
        }
        XCTAssertNoThrow(try build(["a.b.c", "a.b.d", "a.e"]))
    }
}
