import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels
import PolyPEFTMethods

/// A built-in multitask text classification set with a known skill structure, for `polyctl` to run with no files:
/// texts of 3 to 6 words drawn from four categories (plus filler words), and tasks that each label a text by one
/// rule over the words' categories. The label space is the four category names, shared by every task.
///
/// ```
/// categories  color: red green blue gold pink gray     animal: cat dog owl fox bee elk
///             weather: rain snow wind fog hail sun      food: rice bread plum fig corn egg
/// filler      the a and of                              (never the answer)
/// tasks       first    the category of the first word         last     ... of the last word
///             second   ... of the second word                  majority the most frequent category (ties: the
///                                                                       first of them in the text)
///             absent   the first category (in the order above) that no word of the text has, else "color"
/// ```
/// `tokenizer` is a WordPiece tokenizer over these words with BERT's components, and `modelConfig` a tiny BERT for
/// them. Splits are seeded and disjoint.
public struct SyntheticTextTasks: Sendable {
    public static let categories: [(name: String, words: [String])] = [
        ("color", ["red", "green", "blue", "gold", "pink", "gray"]),
        ("animal", ["cat", "dog", "owl", "fox", "bee", "elk"]),
        ("weather", ["rain", "snow", "wind", "fog", "hail", "sun"]),
        ("food", ["rice", "bread", "plum", "fig", "corn", "egg"]),
    ]
    public static let filler = ["the", "a", "and", "of"]
    public static let taskNames = ["first", "last", "second", "majority", "absent"]
    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    public let train: TextClassificationData
    public let validation: TextClassificationData
    public let test: TextClassificationData
    public let tokenizer: Tokenizer

    /// `samplesPerTask` samples per task and split (train, validation, test).
    public init(seed: UInt64, samplesPerTask: (train: Int, validation: Int, test: Int) = (400, 50, 50)) throws {
        let tokenizer = try Self.makeTokenizer()
        var rng = Xoshiro256(seed: seed)
        func split(_ n: Int) throws -> TextClassificationData {
            var samples: [TextClassificationData.Sample] = []
            for _ in 0..<n {
                for task in Self.taskNames.indices {
                    let (text, label) = Self.sample(task: task, using: &rng)
                    let e = try tokenizer.encode(text)
                    samples.append(.init(taskID: task, labelID: label, ids: e.ids, typeIDs: e.typeIDs))
                }
            }
            return TextClassificationData(taskNames: Self.taskNames, labelNames: Self.categories.map(\.name), samples: samples)
        }
        train = try split(samplesPerTask.train)
        validation = try split(samplesPerTask.validation)
        test = try split(samplesPerTask.test)
        self.tokenizer = tokenizer
    }

    /// One text and its label under task `task`.
    public static func sample(task: Int, using rng: inout Xoshiro256) -> (text: String, label: Int) {
        let words = sampleWords(using: &rng)
        return (words.map(\.word).joined(separator: " "), label(task: task, categories: words.compactMap(\.category)))
    }

    /// The words of one text: 3 to 6 category words, each after a filler word one time in four (category nil).
    public static func sampleWords(using rng: inout Xoshiro256) -> [(word: String, category: Int?)] {
        let n = Int.random(in: 3...6, using: &rng)
        let cats = (0..<n).map { _ in Int.random(in: 0..<categories.count, using: &rng) }
        var words: [(String, Int?)] = []
        for c in cats {
            if Int.random(in: 0..<4, using: &rng) == 0 { words.append((filler[Int.random(in: 0..<filler.count, using: &rng)], nil)) }
            words.append((categories[c].words[Int.random(in: 0..<categories[c].words.count, using: &rng)], c))
        }
        return words
    }

    /// The label (a category index) task `task` gives a text whose category words are `cats`, in order.
    public static func label(task: Int, categories cats: [Int]) -> Int {
        switch taskNames[task] {
        case "first": return cats[0]
        case "last": return cats[cats.count - 1]
        case "second": return cats[1]
        case "majority":
            let counts = Dictionary(cats.map { ($0, 1) }, uniquingKeysWith: +)
            let top = counts.values.max()!
            return cats.first { counts[$0] == top }!
        default:
            return (0..<categories.count).first { !cats.contains($0) } ?? 0
        }
    }

    /// WordPiece over the special tokens, the filler and the category words, with BERT's components
    /// (`tokenizerJSON`).
    public static func makeTokenizer() throws -> Tokenizer { try Tokenizer(json: tokenizerJSON) }

    /// The tokenizer as a `tokenizer.json` of the `tokenizers` library (what a BERT folder ships): WordPiece over
    /// `specialTokens + filler + category words` (ids in that order), `BertNormalizer`, `BertPreTokenizer`,
    /// `[CLS] A [SEP]`.
    public static var tokenizerJSON: JSONValue {
        let vocab = specialTokens + filler + categories.flatMap(\.words)
        let added: [JSONValue] = specialTokens.enumerated().map { id, token in
            ["id": .int(id), "content": .string(token), "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        return ["version": "1.0", "truncation": .null, "padding": .null, "added_tokens": .array(added),
                "normalizer": ["type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                               "strip_accents": .null, "lowercase": true],
                "pre_tokenizer": ["type": "BertPreTokenizer"],
                "post_processor": ["type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]],
                "decoder": ["type": "WordPiece", "prefix": "##", "cleanup": true],
                "model": ["type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                          "max_input_chars_per_word": 100,
                          "vocab": .object(Dictionary(uniqueKeysWithValues: vocab.enumerated().map { ($1, .int($0)) }))]]
    }

    /// The base model adapters are trained on: the tiny BERT classifier (`modelConfig`), every weight pre-trained
    /// on a pretext with no task given (half the texts labelled by their first word's category, half by their
    /// last's), so that its encoder knows the words and their positions. A random frozen encoder does not: adapters
    /// on it stay near chance. Seeded: the same seed gives the same weights.
    public static func pretrainedBase(seed: UInt64, steps: Int = 600) throws -> BertForSequenceClassification {
        let tokenizer = try makeTokenizer()
        var rng = Xoshiro256(seed: seed &+ 0x7E47)
        var samples: [TextClassificationData.Sample] = []
        for i in 0..<2000 {
            let (text, label) = sample(task: i % 2, using: &rng)          // "first" or "last", routed as one task
            let e = try tokenizer.encode(text)
            samples.append(.init(taskID: 0, labelID: label, ids: e.ids, typeIDs: e.typeIDs))
        }
        let pretext = TextClassificationData(taskNames: ["pretext"], labelNames: categories.map(\.name), samples: samples)
        let model = try BertForSequenceClassification(config: try BertConfig(json: modelConfig), seed: seed)
        let training = TrainingConfiguration.pretraining(steps: steps, learningRate: 1e-3, seed: seed)
        let trainer = try Trainer(objective: try TextClassificationObjective(model: model, data: pretext),
                                  parameters: TrainableParameters(model.namedParameters().map { ($0.name, $0.parameter) }),
                                  configuration: training)
        try trainer.run()
        return model
    }

    /// A tiny BERT for this vocabulary and these texts (at most 6 words, each with a filler, plus [CLS] and [SEP]).
    public static var modelConfig: JSONValue {
        ["model_type": "bert", "vocab_size": .int(specialTokens.count + filler.count + categories.count * 6),
         "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
         "max_position_embeddings": 16, "num_labels": .int(categories.count), "hidden_dropout_prob": 0.0,
         "attention_probs_dropout_prob": 0.0]
    }
}
