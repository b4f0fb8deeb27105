import Foundation
import PolyPEFT

/// A Hugging Face model folder as the round trip uses it: the model, PEFT's task type for it, its named outputs on
/// the given inputs, and a seeded toy objective to train a prefix on.
///
/// ```
/// BertModel                       FEATURE_EXTRACTION   last_hidden_state [B, T, H], pooler_output [B, H]
///                                                      toy loss: mse(last_hidden_state, N(0, 1) target)
/// BertForSequenceClassification   SEQ_CLS              logits [B, num_labels]
///                                                      toy loss: cross-entropy against random labels
/// T5ForConditionalGeneration      SEQ_2_SEQ_LM         logits [B, Td, vocab] (decoder_input_ids given, no mask)
///                                                      toy loss: the model's loss against random labels
/// ```
/// The toy batch has the shape of the given inputs, random ids and random right padding (BERT: token types 1 from a
/// random position on), all drawn from the generator passed in.
struct RoundTripSubject {
    let model: Module
    let taskType: String
    /// Named outputs on the given inputs, in the order written.
    let outputs: (Context) throws -> [(name: String, value: Variable)]
    /// The toy objective on the batch drawn at construction.
    let loss: (Context) throws -> Variable

    /// Reads the folder (`config.json` + weights) and the inputs (`input_ids`, `attention_mask`, BERT:
    /// `token_type_ids`, T5: `decoder_input_ids`; int64 `[B, T]`).
    static func load(folder: URL, inputs: SafetensorsFile,
                     using rng: inout some RandomNumberGenerator) throws -> RoundTripSubject {
        let (config, weights) = try HFModelFolder.read(from: folder)
        let modelType = config["model_type"]?.stringValue ?? "(none)"
        let architectures = config["architectures"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let ids = try rows(inputs, "input_ids"), mask = try rows(inputs, "attention_mask")
        let (b, t) = (ids.count, ids[0].count)
        func randomIDs(_ count: Int, _ width: Int, vocab: Int) -> [[Int]] {
            (0..<count).map { _ in (0..<width).map { _ in Int.random(in: 2..<vocab, using: &rng) } }
        }
        let toyMask = (0..<b).map { _ in
            let n = Int.random(in: (t + 1) / 2...t, using: &rng)
            return (0..<t).map { $0 < n ? 1 : 0 }
        }

        switch modelType {
        case "t5":
            let t5 = try T5ForConditionalGeneration.load(from: folder)
            let dec = try rows(inputs, "decoder_input_ids")
            let toyIDs = randomIDs(b, t, vocab: t5.config.vocabSize)
            let labels = randomIDs(dec.count, dec[0].count, vocab: t5.config.vocabSize)
            return RoundTripSubject(
                model: t5, taskType: "SEQ_2_SEQ_LM",
                outputs: { [("logits", try t5.forward(inputIDs: ids, attentionMask: mask, decoderInputIDs: dec, $0))] },
                loss: { try t5.loss(inputIDs: toyIDs, attentionMask: toyMask, labels: labels, $0) })
        case "bert":
            let types = try rows(inputs, "token_type_ids")
            let bertConfig = try BertConfig(json: config)
            let toyIDs = randomIDs(b, t, vocab: bertConfig.vocabSize)
            let toyTypes = (0..<b).map { _ in
                let switchAt = Int.random(in: 1...t, using: &rng)
                return (0..<t).map { $0 < switchAt ? 0 : 1 }
            }
            if architectures.contains("BertForSequenceClassification") {
                let (classifier, newHead, _) = try BertForSequenceClassification.load(from: folder)
                guard !newHead else {
                    throw ModelError("\(folder.path): no classifier.* weights to compare a SEQ_CLS model with")
                }
                let labels = (0..<b).map { _ in Int.random(in: 0..<bertConfig.numLabels, using: &rng) }
                return RoundTripSubject(
                    model: classifier, taskType: "SEQ_CLS",
                    outputs: {
                        [("logits", try classifier.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, $0))]
                    },
                    loss: {
                        try classifier.loss(inputIDs: toyIDs, attentionMask: toyMask, tokenTypeIDs: toyTypes,
                                            labels: labels, $0)
                    })
            }
            let bert = try BertModel.load(from: folder, addPoolingLayer: weights.keys.contains { $0.hasPrefix("pooler.") })
            let target = Tensor.normal([b, t, bertConfig.hiddenSize], using: &rng)
            return RoundTripSubject(
                model: bert, taskType: "FEATURE_EXTRACTION",
                outputs: {
                    let (sequence, pooled) = try bert.forward(inputIDs: ids, attentionMask: mask, tokenTypeIDs: types, $0)
                    return [("last_hidden_state", sequence)] + (pooled.map { [("pooler_output", $0)] } ?? [])
                },
                loss: {
                    let sequence = try bert.forward(inputIDs: toyIDs, attentionMask: toyMask, tokenTypeIDs: toyTypes, $0)
                    return try Loss.mse(sequence.sequence, target)
                })
        default:
            throw ModelError("\(folder.appendingPathComponent("config.json").path): model_type '\(modelType)' is not "
                + "one of bert, t5")
        }
    }

    /// A rank-2 integer tensor of the inputs file as rows.
    static func rows(_ file: SafetensorsFile, _ key: String) throws -> [[Int]] {
        guard file.contains(key) else { throw ModelError("inputs: missing tensor '\(key)'") }
        let (values, shape) = try file.intTensor(key)
        guard shape.count == 2, shape[0] > 0, shape[1] > 0 else {
            throw ModelError("inputs: '\(key)' has shape \(shape), not [B, T]")
        }
        return (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    }
}
