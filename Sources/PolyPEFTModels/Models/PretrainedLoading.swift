import Foundation
import PolyPEFTCore
import PolyPEFTIO

/// Building models from Hugging Face model folders (`config.json` + `model.safetensors` or shards).
extension T5ForConditionalGeneration {
    /// Reads the folder's config and weights; every parameter must be present (any one name of a tied parameter
    /// suffices), extra keys and shape mismatches throw, naming the keys.
    public static func load(from directory: URL) throws -> T5ForConditionalGeneration {
        let (json, tensors) = try HFModelFolder.read(from: directory)
        let model = try T5ForConditionalGeneration(config: try T5Config(json: json))
        try model.loadStateDict(tensors)
        return model
    }
}

extension BertModel {
    /// Reads a BERT folder. Keys may carry the `bert.` prefix of task models; pre-training heads (`cls.*`) and a
    /// task head (`classifier.*`) are ignored.
    public static func load(from directory: URL, addPoolingLayer: Bool = true) throws -> BertModel {
        let (json, tensors) = try HFModelFolder.read(from: directory)
        let model = try BertModel(config: try BertConfig(json: json), addPoolingLayer: addPoolingLayer)
        var own: [String: Tensor] = [:]
        for (k, t) in tensors where !k.hasPrefix("cls.") && !k.hasPrefix("classifier.") {
            own[k.hasPrefix("bert.") ? String(k.dropFirst(5)) : k] = t
        }
        if !addPoolingLayer { own = own.filter { !$0.key.hasPrefix("pooler.") } }
        try model.loadStateDict(own)
        return model
    }
}

extension BertForSequenceClassification {
    /// Reads a BERT folder into a classifier. Keys without the `bert.` prefix (a bare `BertModel` checkpoint) get it;
    /// `cls.*` pre-training heads are ignored. A checkpoint without `classifier.*` keeps the freshly initialised head
    /// (as transformers does, "newly initialized"); `newHead` reports whether that happened.
    public static func load(from directory: URL, seed: UInt64 = 0) throws -> (model: BertForSequenceClassification, newHead: Bool) {
        let (json, tensors) = try HFModelFolder.read(from: directory)
        let model = try BertForSequenceClassification(config: try BertConfig(json: json), seed: seed)
        var own: [String: Tensor] = [:]
        for (k, t) in tensors where !k.hasPrefix("cls.") {
            own[k.hasPrefix("bert.") || k.hasPrefix("classifier.") ? k : "bert." + k] = t
        }
        let newHead = own["classifier.weight"] == nil && own["classifier.bias"] == nil
        if newHead {
            for (n, p) in model.namedParameters() where n.hasPrefix("classifier.") { own[n] = p.value }
        }
        try model.loadStateDict(own)
        return (model, newHead)
    }
}
