import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// The router protocol: task routing's groups, a router that reads the input (`LinearRouter`) inside a Poly layer
/// against plain loops and finite differences, the checks on what routers return, injected draws, and parameter roles.
final class RouterTests: XCTestCase {
    func makeLayer(pooling: LinearRouter.Pooling, splits: Int = 2, mixing: MixingMode = .parameters,
                   seed: UInt64 = 2) throws -> RoutedPolyLinear<LinearRouter> {
        var g = Xoshiro256(seed: seed)
        let layer = try RoutedPolyLinear(wrapping: Linear(6, 4, using: &g), path: "fc", r: 2, nSkills: 3, nSplits: splits,
                                         initWeights: false, mixing: mixing, using: &g) { g in
            try LinearRouter(inFeatures: 6, nSkills: 3, nSplits: splits, pooling: pooling, using: &g)
        }
        layer.router.weight.value = Tensor.normal([6, splits * 3], std: 1.5, using: &g)
        return layer
    }

    /// The router's weights `[S, K]` of every row of `x`, with plain loops: the input (or its mean over the tokens
    /// of the row's sequence) times `W`, softmax over skills per split.
    func referenceWeights(_ router: LinearRouter, x: Tensor) -> [Tensor] {
        let inF = router.inFeatures, s = router.nSplits, k = router.nSkills
        let n = x.shape[0], t = x.rank == 3 ? x.shape[1] : 1
        let xs = x.contiguous().scalars, wt = router.weight.value
        return (0..<(n * t)).map { row in
            let rows = router.pooling == .token ? [row] : Array((row / t * t)..<(row / t * t + t))
            var out = [Float](repeating: 0, count: s * k)
            for sk in 0..<(s * k) {
                var z: Float = 0
                for i in 0..<inF {
                    let h = rows.reduce(Float(0)) { $0 + xs[$1 * inF + i] } / Float(rows.count)
                    z += h * wt[i, sk]
                }
                out[sk] = z
            }
            for si in 0..<s {
                let z = out[(si * k)..<((si + 1) * k)], m = z.max()!
                let e = z.map { Float(exp(Double($0 - m))) }, sum = e.reduce(0, +)
                for kk in 0..<k { out[si * k + kk] = e[kk] / sum }
            }
            return Tensor(out, shape: [s, k])
        }
    }

    func testInputRoutedLayerMatchesReference() throws {
        for pooling in LinearRouter.Pooling.allCases { for mixing in MixingMode.allCases {
            for strategy in RoutingStrategy.allCases { for splits in [1, 2] {
                let layer = try makeLayer(pooling: pooling, splits: splits, mixing: mixing)
                layer.strategy = strategy
                for shape in [[5, 6], [4, 3, 6]] {
                    let x = randomTensor(shape, seed: 3)
                    let w = referenceWeights(layer.router, x: x)
                    let want = try routedLayerReference(layer, x: x) { w[$0] }
                    for ctx in [Context.inference(), Context(), Context(mode: .train)] {
                        assertClose(try layer(Variable(x), ctx).value, want, rtol: 1e-5, atol: 1e-6,
                                    "\(pooling) \(mixing) \(strategy) S=\(splits) \(shape) \(ctx.mode)")
                    }
                }
            } }
        } }
    }

    func testInputRoutedLayerGradientsByFiniteDifferences() throws {
        for pooling in LinearRouter.Pooling.allCases { for mixing in MixingMode.allCases {
            for strategy in [RoutingStrategy.perGroup, .perRow] { for mode in [Context.Mode.eval, .train] {
                let layer = try makeLayer(pooling: pooling, mixing: mixing)
                layer.strategy = strategy
                let x = randomTensor([3, 2, 6], seed: 5)
                func run(_ input: Variable) throws -> Variable { try layer(input, Context(mode: mode)) }
                try paramGradCheck([layer.loraA, layer.loraB, layer.router.weight]) { try run(Variable(x)) }
                try gradCheck([x]) { v in try run(v[0]) }
            } }
        } }
    }

    /// Recorded mixing weights are per sample for sequence routing and per row for token routing.
    func testRecordedWeightsAndGroups() throws {
        let x = Variable(randomTensor([2, 3, 6], seed: 4))
        for (pooling, groups) in [(LinearRouter.Pooling.token, 6), (.sequence, 2)] {
            let layer = try makeLayer(pooling: pooling)
            let routing = try layer.router.route(x, Context.inference(), layer: "fc")
            XCTAssertEqual(routing.groupCount, groups)
            XCTAssertEqual(routing.rowGroups, pooling == .token ? [0, 1, 2, 3, 4, 5] : [0, 0, 0, 1, 1, 1])
            let ctx = Context.inference()
            ctx.recorder = Recorder()
            _ = try layer(x, ctx)
            XCTAssertEqual(ctx.recorder!["layer.fc.mixing_weights"]?.shape, [groups, 2, 3])
            assertClose(try routing.weights.value.sum(axes: [2]), Tensor.ones([groups, 2]))
        }
    }

    /// Task routing: a group per distinct task in evaluation, per sample in training; tokens follow their sample.
    func testTaskRoutingGroups() throws {
        var g = Xoshiro256(seed: 1)
        let router = PolyRouter(nTasks: 3, nSkills: 2, nSplits: 1, using: &g)
        let x = Variable(randomTensor([3, 2, 4], seed: 1))
        let eval = try router.route(x, Context.inference(taskIDs: [2, 0, 2]), layer: "fc")
        XCTAssertEqual(eval.sampleGroups, [0, 1, 0])
        XCTAssertEqual(eval.rowGroups, [0, 0, 1, 1, 0, 0])
        XCTAssertEqual(eval.weights.value, try router.allocation().indexSelect(axis: 0, [2, 0]))
        let train = try router.route(x, Context(mode: .train, taskIDs: [2, 0, 2]), layer: "fc")
        XCTAssertEqual(train.sampleGroups, [0, 1, 2])
        XCTAssertEqual(train.rowGroups, [0, 0, 1, 1, 2, 2])
        XCTAssertThrowsError(try router.route(x, Context.inference(taskIDs: [0, 3, 1]), layer: "fc")) {
            XCTAssertEqual("\($0)", "fc: task id 3 of sample 1 is out of range 0..<3")
        }
    }

    func testRoutingAndRouterErrors() throws {
        let w = Variable(Tensor.zeros([2, 1, 3]))
        XCTAssertThrowsError(try Routing(weights: w, rowGroups: [0, 2])) {
            XCTAssertEqual("\($0)", "routing: group 2 is not in 0..<2 (weights [2, 1, 3])")
        }
        XCTAssertThrowsError(try Routing(weights: Variable(Tensor.zeros([2, 3])), sampleGroups: [0], tokens: 1)) {
            XCTAssertEqual("\($0)", "routing: weights [2, 3] must be [G, S, K]")
        }
        XCTAssertThrowsError(try Routing(weights: w, sampleGroups: [0], tokens: 0)) {
            XCTAssertEqual("\($0)", "routing: tokens per sample must be at least 1, got 0")
        }
        let layer = try makeLayer(pooling: .token)
        XCTAssertThrowsError(try layer.merge()) {
            XCTAssertEqual("\($0)", "fc: a Poly layer routed by LinearRouter mixes its skills per input and cannot be merged")
        }
        XCTAssertThrowsError(try layer.router.route(Variable(Tensor.zeros([2, 5])), Context.inference(), layer: "fc")) {
            XCTAssertEqual("\($0)", "routing: fc: input [2, 5] does not end in the router's 6 features")
        }
        XCTAssertThrowsError(try layer.router.route(Variable(Tensor.zeros([6])), Context.inference(), layer: "fc")) {
            XCTAssertEqual("\($0)", "routing: fc: input [6] must be [N, in] or [N, T, in]")
        }
        var g = Xoshiro256(seed: 0)
        XCTAssertThrowsError(try RoutedPolyLinear(wrapping: Linear(6, 4, using: &g), path: "fc", r: 2, nSkills: 3, nSplits: 2,
                                                  using: &g) { g in try LinearRouter(inFeatures: 6, nSkills: 4, nSplits: 2, using: &g) }) {
            XCTAssertEqual("\($0)", "fc: the router mixes 2 splits x 4 skills, the layer has 2 x 3")
        }
        XCTAssertThrowsError(try LinearRouter(inFeatures: 0, nSkills: 2, nSplits: 1, using: &g)) {
            XCTAssertEqual("\($0)", "linear router: in_features, n_skills and n_splits must be at least 1, got 0, 2, 1")
        }
    }

    /// Injected draws replace the generator's for their path only, and must have the shape drawn.
    func testInjectedUniformDraws() throws {
        let ctx = Context(rng: Xoshiro256(seed: 5))
        let injected = randomTensor([2, 3], seed: 1, low: 0, high: 1)
        ctx.injectedUniformDraws["a"] = injected
        XCTAssertEqual(try ctx.uniformDraws([2, 3], for: "a"), injected)
        var g = Xoshiro256(seed: 5)
        XCTAssertEqual(try ctx.uniformDraws([4], for: "b"), Tensor.uniform([4], using: &g))
        XCTAssertEqual(ctx.rng, g)
        XCTAssertThrowsError(try ctx.uniformDraws([3, 2], for: "a")) {
            XCTAssertEqual("\($0)", "uniform draws: 'a' draws [3, 2], the injected draws are [2, 3]")
        }
    }

    /// Adapters declare their routing parameters; the model groups trainable parameters by role and the trainer
    /// gives each group its learning rate.
    func testParameterRolesGroupTraining() throws {
        let layer = try makeLayer(pooling: .sequence)
        XCTAssertEqual(layer.adapterParameters().map { layer.parameterRole($0.name) }, [.adapter, .adapter, .router])
        let peft = try routingTestModel()
        let trainable = peft.trainableParameters()
        XCTAssertEqual(trainable.groups.map(\.role), [.adapter, .router])
        XCTAssertEqual(trainable[.router].map(\.name), ["base_model.model.fc1.poly_router.module_logits",
                                                        "base_model.model.fc2.poly_router.module_logits"])
        XCTAssertEqual(trainable[.adapter].map(\.name), ["base_model.model.fc1.poly_lora_A", "base_model.model.fc1.poly_lora_B",
                                                         "base_model.model.fc2.poly_lora_A", "base_model.model.fc2.poly_lora_B"])
        XCTAssertEqual(trainable.all.map(\.name), peft.trainableAdapterParameters().map(\.key))
        var config = TrainingConfiguration()
        config.learningRate = 0.01
        config.routerLearningRate = 0.2
        let data = try MultitaskDataset(inputs: randomTensor([4, 6], seed: 1), targets: randomTensor([4, 2], seed: 2),
                                        taskIDs: [0, 1, 2, 0], taskNames: ["a", "b", "c"])
        let trainer = try Trainer(objective: RegressionObjective(model: peft.model as! MLP, data: data), parameters: trainable,
                                  configuration: config)
        XCTAssertEqual(trainer.optimizer.groups.map(\.name), ["adapter", "router"])
        XCTAssertEqual(trainer.optimizer.groups.map(\.learningRate), [0.01, 0.2])
        var g = Xoshiro256(seed: 3)
        let lora = try PeftModel(wrapping: try routingTestMLP(), config: LoraConfig(r: 2, targetModules: .names(["fc1"])), using: &g)
        XCTAssertEqual(lora.trainableParameters().groups.map(\.role), [.adapter])
    }
}
