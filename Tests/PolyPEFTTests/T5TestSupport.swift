import XCTest
@testable import PolyPEFT
@testable import PolyPEFTCore
@testable import PolyPEFTIO
@testable import PolyPEFTModels
@testable import PolyPEFTMethods
@testable import PolyPEFTTraining

/// Tiny T5 configurations for tests.
enum T5TestSupport {
    static func tinyConfig(gated: Bool = false, tied: Bool = true, dropout: Float = 0, layers: Int = 2,
                           activation: Activation.Kind = .relu) -> T5Config {
        T5Config(vocabSize: 13, dModel: 8, dKV: 3, dFF: 12, numLayers: layers, numDecoderLayers: layers, numHeads: 2,
                 relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 12, dropoutRate: dropout,
                 feedForward: gated ? .gated(.geluTanh) : .dense(activation), tieWordEmbeddings: tied,
                 decoderStartTokenID: 0, padTokenID: 0, eosTokenID: 1)
    }

    /// Replaces every `q` and `v` linear with a Poly layer whose router strongly separates the tasks.
    static func injectPoly(_ model: Module, nTasks: Int, seed: UInt64) throws {
        var g = Xoshiro256(seed: seed)
        let paths = model.namedModules().map(\.path).filter { $0.hasSuffix(".q") || $0.hasSuffix(".v") }
        for p in paths {
            let base = model.module(at: p) as! Linear
            let poly = try PolyLinear(wrapping: base, path: p, r: 2, nTasks: nTasks, nSkills: 3, nSplits: 1,
                                      initWeights: false, using: &g)
            try model.replace(path: p, with: poly)
        }
        for (n, p) in model.namedParameters() where n.hasSuffix("module_logits") {
            p.value = Tensor.normal(p.value.shape, std: 3, using: &g)
        }
        for (n, p) in model.namedParameters() where n.hasSuffix("poly_lora_B") {
            p.value = p.value * 4
        }
    }
}
