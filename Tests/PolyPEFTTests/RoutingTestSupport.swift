import Foundation
import XCTest
@testable import PolyPEFT

/// fc1 6->8, relu, fc2 8->4, head 4->2 (the same weights for the same seed).
func routingTestMLP(seed: UInt64 = 1) throws -> MLP {
    var g = Xoshiro256(seed: seed)
    return try MLP([.linear(name: "fc1", inFeatures: 6, outFeatures: 8, bias: true), .activation(.relu),
                    .linear(name: "fc2", inFeatures: 8, outFeatures: 4, bias: true),
                    .linear(name: "head", inFeatures: 4, outFeatures: 2, bias: true)], using: &g)
}

/// A Poly model on `routingTestMLP()` with non-zero skills and spread-out router logits.
func routingTestModel(splits: Int = 2, skills: Int = 3, tasks: Int = 3, mixing: MixingMode = .parameters,
                      routing: RoutingOptions = RoutingOptions(), seed: UInt64 = 7) throws -> PeftModel {
    var g = Xoshiro256(seed: seed)
    var config = PolyConfig(r: 2, targetModules: .names(["fc1", "fc2"]), nTasks: tasks, nSkills: skills, nSplits: splits,
                            initWeights: false, mixing: mixing)
    config.routing = routing
    let peft = try PeftModel(wrapping: try routingTestMLP(), config: config, using: &g)
    for (_, layer) in peft.polyLayers {
        layer.router.moduleLogits.value = Tensor.normal(layer.router.moduleLogits.value.shape, std: 2, using: &g)
    }
    return peft
}

func forward(_ peft: PeftModel, _ x: Tensor, _ ctx: Context) throws -> Variable {
    try (peft.model as! MLP)(Variable(x), ctx)
}

func temporaryDirectory() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("polypeft-routing-\(UUID().uuidString)", isDirectory: true)
}
