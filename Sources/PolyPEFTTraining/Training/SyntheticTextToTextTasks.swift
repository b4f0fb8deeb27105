import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// A built-in multitask text-to-text set with a known skill structure, for `polyctl` to run with no files: the
/// texts of `SyntheticTextTasks` (category words and fillers), and tasks that each rewrite a text by one rule, so the
/// same source has a different target in each task.
///
/// ```
/// source      "the red fox and rain"                     (3 to 6 category words, fillers between)
/// copy        "red fox rain"                             the category words
/// categories  "color animal weather"                     each category word's category
/// reverse     "rain fox red"                             the category words, last first
/// first       "red"                                      the first category word
/// colors      "red"                                      the color words ("none" without one)
/// ```
/// `tokenizer` is a SentencePiece-style Unigram tokenizer (Metaspace, `</s>` after each text) over these words, and
/// `modelConfig` a tiny T5 for them. Splits are seeded and disjoint.
public struct SyntheticTextToTextTasks: Sendable {
    public static let taskNames = ["copy", "categories", "reverse", "first", "colors"]
    public static let specialTokens = ["<pad>", "</s>", "<unk>"]
    /// Every word a source or target uses.
    public static let words = SyntheticTextTasks.filler + SyntheticTextTasks.categories.flatMap(\.words)
        + SyntheticTextTasks.categories.map(\.name) + ["none"]

    public let train: TextToTextData
    public let validation: TextToTextData
    public let test: TextToTextData

    /// `samplesPerTask` samples per task and split (train, validation, test).
    public init(seed: UInt64, samplesPerTask: (train: Int, validation: Int, test: Int) = (400, 50, 50)) throws {
        let tokenizer = try Self.makeTokenizer()
        var rng = Xoshiro256(seed: seed)
        func split(_ n: Int) throws -> TextToTextData {
            var samples: [TextToTextData.Sample] = []
            for _ in 0..<n {
                for task in Self.taskNames.indices {
                    let (source, target) = Self.sample(task: task, using: &rng)
                    samples.append(.init(taskID: task, sourceIDs: try tokenizer.encode(source).ids, targetIDs: try tokenizer.encode(target).ids))
                }
            }
            return TextToTextData(taskNames: Self.taskNames, samples: samples)
        }
        train = try split(samplesPerTask.train)
        validation = try split(samplesPerTask.validation)
        test = try split(samplesPerTask.test)
    }

    /// One source and its target under task `task`.
    public static func sample(task: Int, using rng: inout Xoshiro256) -> (source: String, target: String) {
        let words = SyntheticTextTasks.sampleWords(using: &rng)
        return (words.map(\.word).joined(separator: " "), target(task: task, words: words))
    }

    /// The target task `task` gives a text of `words`.
    public static func target(task: Int, words: [(word: String, category: Int?)]) -> String {
        let content = words.filter { $0.category != nil }
        switch taskNames[task] {
        case "copy": return content.map(\.word).joined(separator: " ")
        case "categories": return content.map { SyntheticTextTasks.categories[$0.category!].name }.joined(separator: " ")
        case "reverse": return content.reversed().map(\.word).joined(separator: " ")
        case "first": return content[0].word
        default:
            let colors = content.filter { $0.category == 0 }.map(\.word)
            return colors.isEmpty ? "none" : colors.joined(separator: " ")
        }
    }

    public static func makeTokenizer() throws -> Tokenizer { try Tokenizer(json: tokenizerJSON) }

    /// The tokenizer as a `tokenizer.json` (what a T5 folder ships): Unigram over `specialTokens` then "▁" + each
    /// of `words`, Metaspace, `$A </s>`.
    public static var tokenizerJSON: JSONValue {
        let added: [JSONValue] = specialTokens.enumerated().map { id, token in
            ["id": .int(id), "content": .string(token), "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let pieces: [JSONValue] = specialTokens.map { [.string($0), 0.0] } + words.map { [.string("\u{2581}" + $0), -1.0] }
        let metaspace: JSONValue = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true]
        return ["version": "1.0", "truncation": .null, "padding": .null, "added_tokens": .array(added),
                "normalizer": .null, "pre_tokenizer": metaspace,
                "post_processor": ["type": "TemplateProcessing",
                                   "single": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]],
                                   "pair": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]],
                                            ["Sequence": ["id": "B", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]],
                                   "special_tokens": ["</s>": ["id": "</s>", "ids": [1], "tokens": ["</s>"]]]],
                "decoder": metaspace,
                "model": ["type": "Unigram", "unk_id": 2, "vocab": .array(pieces), "byte_fallback": false]]
    }

    /// A tiny T5 for this vocabulary.
    public static var modelConfig: JSONValue {
        ["model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "vocab_size": .int(specialTokens.count + words.count),
         "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 8,
         "relative_attention_max_distance": 16, "dropout_rate": 0.0, "feed_forward_proj": "relu",
         "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": true]
    }

    /// The base model adapters are trained on: the tiny T5 with every weight pre-trained on a pretext with no task
    /// given (half the texts copied, half mapped to their categories), so that it reads and writes the words. Seeded.
    public static func pretrainedBase(seed: UInt64, steps: Int = 600) throws -> T5ForConditionalGeneration {
        let tokenizer = try makeTokenizer()
        var rng = Xoshiro256(seed: seed &+ 0x7E57)
        var samples: [TextToTextData.Sample] = []
        for i in 0..<2000 {
            let (source, target) = sample(task: i % 2, using: &rng)          // "copy" or "categories", as one task
            samples.append(.init(taskID: 0, sourceIDs: try tokenizer.encode(source).ids, targetIDs: try tokenizer.encode(target).ids))
        }
        let model = try T5ForConditionalGeneration(config: try T5Config(json: modelConfig), seed: seed)
        let training = TrainingConfiguration.pretraining(steps: steps, learningRate: 3e-3, seed: seed)
        let objective = TextToTextObjective(model: model, data: TextToTextData(taskNames: ["pretext"], samples: samples))
        try Trainer(objective: objective, parameters: TrainableParameters(model.namedParameters().map { ($0.name, $0.parameter) }),
                    configuration: training).run()
        return model
    }
}
