import Foundation
import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

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

/// A routed layer's output with plain loops, row `i` of the flattened input mixing with `weightsOfRow(i)` (`[S, K]`):
/// PEFT's maths for parameter mixing, the documented form for output mixing.
func routedLayerReference<R: Router>(_ layer: RoutedPolyLinear<R>, x: Tensor, weightsOfRow: (Int) throws -> Tensor) throws -> Tensor {
    let s = layer.nSplits, k = layer.nSkills, r = layer.r
    let inF = layer.baseLayer.inFeatures, outF = layer.baseLayer.outFeatures, d = inF / s, e = outF / s
    let a = layer.loraA.value, b = layer.loraB.value
    let base = try layer.baseLayer(Variable(x), Context.inference()).value
    let n = x.shape[0], t = x.rank == 3 ? x.shape[1] : 1
    let xs = try x.reshaped([n * t, inF])
    var out = try base.reshaped([n * t, outF]).scalars
    for row in 0..<(n * t) {
        let w = try weightsOfRow(row)                                                  // [S, K]
        for sOut in 0..<s { for c in 0..<e {
            var acc: Float = 0
            switch layer.mixing {
            case .parameters:
                for j in 0..<r {
                    var h: Float = 0
                    for sIn in 0..<s { for i in 0..<d {
                        var am: Float = 0
                        for kk in 0..<k { am += w[sIn, kk] * a[sIn, kk, i, j] }
                        h += xs[row, sIn * d + i] * am
                    } }
                    var bm: Float = 0
                    for kk in 0..<k { bm += w[sOut, kk] * b[sOut, kk, j, c] }
                    acc += h * bm
                }
            case .outputs:
                for kk in 0..<k { for j in 0..<r {
                    var h: Float = 0
                    for sIn in 0..<s { for i in 0..<d { h += xs[row, sIn * d + i] * a[sIn, kk, i, j] } }
                    acc += w[sOut, kk] * h * b[sOut, kk, j, c]
                } }
            }
            out[row * outF + sOut * e + c] += acc / Float(r)
        } }
    }
    return Tensor(out, shape: Array(x.shape.dropLast()) + [outF])
}

func forward(_ peft: PeftModel, _ x: Tensor, _ ctx: Context) throws -> Variable {
    try (peft.model as! MLP)(Variable(x), ctx)
}

func temporaryDirectory() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("polypeft-routing-\(UUID().uuidString)", isDirectory: true)
}
