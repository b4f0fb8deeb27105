import Foundation
import PolyPEFTCore
import PolyPEFTIO

/// Building models from Hugging Face model folders (`config.json` + `model.safetensors` or shards).
extension T5ForConditionalGeneration {
    /// Reads the folder's config and weights (any float dtype; one file or shards); every parameter must be present
    /// (any one name of a tied parameter suffices: `shared`, `encoder.embed_tokens`, `decoder.embed_tokens` and, with
    /// `tie_word_embeddings`, `lm_head`); extra keys, integer tensors and shape mismatches throw, naming the keys.
    public static func load(from directory: URL) throws -> T5ForConditionalGeneration {
        let (json, tensors, _) = try HFModelFolder.readCheckpoint(from: directory, buffers: { _ in false })
        let model = try T5ForConditionalGeneration(config: try T5Config(json: json))
        try model.loadStateDict(tensors, source: directory.path)
        return model
    }
}

/// A BERT checkpoint as published, read once for `BertModel` and `BertForSequenceClassification`.
///
/// ```
/// bert.<name> and <name>                 the encoder's parameters (task models carry the prefix, bare models not)
/// [bert.]embeddings.position_ids         buffer [1, L], L <= max_position_embeddings: must be 0, 1, ..., L-1
/// [bert.]embeddings.token_type_ids       buffer [1, L]: must be token types below type_vocab_size
/// cls.*                                  pre-training heads (their decoder tied to the word embeddings): ignored
/// classifier.*, pooler.*                 a task head and the pooler: optional
/// ```
/// Everything else must be a parameter of the model; an integer tensor that is not one of the buffers is an error
/// naming it.
struct BertCheckpoint {
    static let bufferNames = ["embeddings.position_ids", "embeddings.token_type_ids"]

    let config: BertConfig
    /// The encoder's parameters without the `bert.` prefix; `cls.*` dropped.
    let encoder: [String: Tensor]
    /// `classifier.*` tensors, if any.
    let head: [String: Tensor]

    init(from directory: URL) throws {
        let (json, tensors, buffers) = try HFModelFolder.readCheckpoint(from: directory) { key in
            Self.bufferNames.contains(key.hasPrefix("bert.") ? String(key.dropFirst(5)) : key)
        }
        config = try BertConfig(json: json)
        for (key, b) in buffers { try Self.check(buffer: key, b, config: config, source: directory.path) }
        var encoder: [String: Tensor] = [:], head: [String: Tensor] = [:]
        for (k, t) in tensors where !k.hasPrefix("cls.") {
            if k.hasPrefix("classifier.") { head[k] = t; continue }
            let name = k.hasPrefix("bert.") ? String(k.dropFirst(5)) : k
            guard encoder.updateValue(t, forKey: name) == nil else {
                throw ModelError("\(directory.path): the checkpoint holds both '\(name)' and 'bert.\(name)'")
            }
        }
        self.encoder = encoder
        self.head = head
    }

    /// True when the checkpoint has pooler weights.
    var hasPooler: Bool { encoder.keys.contains { $0.hasPrefix("pooler.") } }

    /// A buffer must hold what the model computes itself: positions 0..<L, or valid token types.
    static func check(buffer key: String, _ b: (values: [Int], shape: [Int]), config: BertConfig, source: String) throws {
        let length = b.values.count
        guard b.shape == [1, length] || b.shape == [length], length <= config.maxPositionEmbeddings else {
            throw ModelError("\(source): buffer '\(key)' has shape \(fmt(b.shape)), expected [1, L] with L <= "
                + "max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        if key.hasSuffix("position_ids") {
            if let i = b.values.indices.first(where: { b.values[$0] != $0 }) {
                throw ModelError("\(source): buffer '\(key)' holds \(b.values[i]) at position \(i); BERT's positions are 0, 1, 2, ...")
            }
        } else if let v = b.values.first(where: { $0 < 0 || $0 >= config.typeVocabSize }) {
            throw ModelError("\(source): buffer '\(key)' holds token type \(v), outside 0..<\(config.typeVocabSize)")
        }
    }
}

extension BertModel {
    /// Reads a BERT folder as published (see `BertCheckpoint`: the `bert.` prefix of task models, buffers, tied and
    /// optional heads). `addPoolingLayer` nil: a pooler exactly when the checkpoint has one; true: required.
    public static func load(from directory: URL, addPoolingLayer: Bool? = nil) throws -> BertModel {
        let checkpoint = try BertCheckpoint(from: directory)
        let pooler = addPoolingLayer ?? checkpoint.hasPooler
        let model = try BertModel(config: checkpoint.config, addPoolingLayer: pooler)
        try model.loadStateDict(pooler ? checkpoint.encoder : checkpoint.encoder.filter { !$0.key.hasPrefix("pooler.") },
                                source: directory.path)
        return model
    }
}

extension BertForSequenceClassification {
    /// Reads a BERT folder into a classifier (see `BertCheckpoint`). A checkpoint without any `classifier.*` tensor
    /// keeps the freshly initialised head (as transformers does, "newly initialized"), and one without any pooler
    /// tensor a fresh pooler; a head or pooler given in part is an error naming the missing tensor. `numLabels`
    /// overrides the config's label count (transformers' `num_labels=`); a checkpoint head of another size is then an
    /// error. `newHead` and `newPooler` report what was initialised fresh.
    public static func load(from directory: URL, numLabels: Int? = nil, seed: UInt64 = 0)
        throws -> (model: BertForSequenceClassification, newHead: Bool, newPooler: Bool) {
        let checkpoint = try BertCheckpoint(from: directory)
        var config = checkpoint.config
        if let numLabels {
            guard numLabels > 0 else { throw ModelError("\(directory.path): num_labels must be positive, got \(numLabels)") }
            if let w = checkpoint.head["classifier.weight"], w.rank == 2, w.shape[0] != numLabels {
                throw ModelError("\(directory.path): its head 'classifier.weight' has \(w.shape[0]) labels, not the "
                    + "\(numLabels) asked for; use the encoder without its head")
            }
            config.numLabels = numLabels
        }
        let model = try BertForSequenceClassification(config: config, seed: seed)
        var own = checkpoint.head
        for (k, t) in checkpoint.encoder { own["bert." + k] = t }
        let newHead = checkpoint.head.isEmpty, newPooler = !checkpoint.hasPooler
        for group in ["classifier.", "bert.pooler."] where !own.keys.contains(where: { $0.hasPrefix(group) }) {
            for (n, p) in model.namedParameters() where n.hasPrefix(group) { own[n] = p.value }
        }
        try model.loadStateDict(own, source: directory.path)
        return (model, newHead, newPooler)
    }
}
