import Foundation
import PolyPEFT

/// What a text run does: classify texts with a BERT, or rewrite them with a T5.
enum TextRunKind: String, Codable {
    case classification, generation

    /// The `model_type`s of the models that do it.
    var modelTypes: [String] { self == .classification ? ["bert"] : ["t5", "mt5"] }
}

/// What a text run adds to its `RunSpec`: the model it adapts, how texts become ids, and the classifier's labels.
struct TextRunSpec: Codable, Equatable {
    var kind: TextRunKind
    /// The model folder (absolute), or nil for the built-in tiny model that `train` pre-trains and saves in the run
    /// folder (`TextBase.folderName`).
    var modelPath: String?
    /// The modules the adapter targets.
    var targets: [String]
    /// Tokens per text (a generation run's source), with the special tokens; at most BERT's `max_position_embeddings`.
    var maxLength: Int
    /// Generation: tokens per target, with the special tokens (and the longest generation).
    var maxTargetLength: Int?
    /// Longer texts are truncated (true) or refused with an error naming their line.
    var truncate: Bool
    /// Classification: the shared label space (every label name of the data, in order of first appearance).
    var labelNames: [String]
    /// One head per task (`--heads per-task`); nil: every task predicts over `labelNames`.
    var heads: TaskHeads?
    /// The checkpoint has no pooler: the fresh one trains and is saved with the adapter (`modules_to_save`).
    var trainPooler: Bool

    /// The classifier's outputs.
    var outputCount: Int { heads?.outputCount ?? labelNames.count }

    /// The label an output stands for.
    func label(ofOutput o: Int) -> String { heads.map { $0.outputNames[o].label } ?? labelNames[o] }

    /// Whether a method's text run names target modules.
    enum TargetsRule { case required, optional, none }

    func validate(file: String, taskCount: Int, targets rule: TargetsRule) throws {
        guard (1...Tokenizer.maxPaddedLength).contains(maxLength) else {
            throw CLIError.runtime("\(file): text.maxLength is \(maxLength), not in 1...\(Tokenizer.maxPaddedLength)")
        }
        switch kind {
        case .classification:
            guard !labelNames.isEmpty, Set(labelNames).count == labelNames.count else {
                throw CLIError.runtime("\(file): text.labelNames must be distinct names, at least one")
            }
        case .generation:
            guard let m = maxTargetLength, (1...Tokenizer.maxPaddedLength).contains(m) else {
                throw CLIError.runtime("\(file): text.maxTargetLength must be in 1...\(Tokenizer.maxPaddedLength) for a generation run")
            }
        }
        if rule == .required && targets.isEmpty { throw CLIError.runtime("\(file): text.targets is empty") }
        if rule == .none && !targets.isEmpty {
            throw CLIError.runtime("\(file): text.targets must be empty for a prompt-learning or bottleneck run")
        }
        do { try heads?.validate(taskCount: taskCount, source: "\(file): text.heads") } catch let e as PolyPEFTError {
            throw CLIError.runtime(e.message)
        }
    }

    /// The modules adapted when `--targets` is not given: the built-in tiny model's attention and feed-forward
    /// layers; PEFT's defaults (BERT: `query`, `value`; T5: `q`, `v`; IA3 and BEFT their own) on a user's model; LN
    /// tuning: every norm (BERT's `LayerNorm`s, T5's PEFT default); none for prompt learning.
    static func defaultTargets(_ kind: TextRunKind, builtIn: Bool, method: RunMethod) -> [String] {
        let type = kind == .classification ? "bert" : "t5"
        switch method {
        case .ia3: return DefaultTargets.ia3[type]!
        case .beft: return DefaultTargets.beft[type]!
        case .ssf: return DefaultTargets.ssf[type]!
        case .sparse: break
        case .lnTuning: return DefaultTargets.lnTuning[type] ?? ["LayerNorm"]
        case .promptTuning, .pTuning, .prefixTuning, .bitfit: return []      // BitFit: every bias
        case .seqBn, .doubleSeqBn, .parBn, .compacter, .compacterPP, .adaptersLoRA, .adaptersIA3, .adaptersPrefix, .mam, .unipelt: return []
        case .poly, .mhr, .lora, .dora: break
        }
        if builtIn { return kind == .classification ? ["query", "value", "intermediate.dense", "output.dense"] : ["q", "k", "v", "o", "wi", "wo"] }
        return DefaultTargets.lora[type]!
    }
}

/// The model a text run adapts (a BERT classifier or a T5), with its tokenizer.
struct TextBase {
    /// The built-in base inside a run folder: a model folder as published (`config.json`, `model.safetensors`,
    /// `tokenizer.json`), which transformers' `from_pretrained` reads too.
    static let folderName = "base_model"
    static let tokenizerFileName = "tokenizer.json"

    let model: Module
    let kind: TextRunKind
    let tokenizer: Tokenizer
    let folder: URL
    /// The checkpoint had no pooler (a fresh one was made; classifiers only).
    let newPooler: Bool

    /// The id padding positions hold: the tokenizer's padding id, else its `[PAD]`, else 0.
    var padID: Int { tokenizer.padding?.id ?? tokenizer.id(for: "[PAD]") ?? 0 }

    /// The BERT classifier of a classification run.
    var classifier: BertForSequenceClassification {
        get throws {
            guard let m = model as? BertForSequenceClassification else { throw CLIError.runtime("\(folder.path): not a classification model") }
            return m
        }
    }

    /// The T5 of a generation run.
    var generator: T5ForConditionalGeneration {
        get throws {
            guard let m = model as? T5ForConditionalGeneration else { throw CLIError.runtime("\(folder.path): not a text-to-text model") }
            return m
        }
    }

    /// The folder of a run's base: the user's model, or the built-in one saved in the run folder.
    static func folder(of text: TextRunSpec, runDir: URL) -> URL {
        text.modelPath.map { URL(fileURLWithPath: $0) }
            ?? AtomicDirectory.resolve(runDir.appendingPathComponent(folderName)) ?? runDir.appendingPathComponent(folderName)
    }

    /// The kind of run a model folder's `config.json` is for (BERT: classification, T5: generation); anything else is
    /// an error naming the folder or file.
    static func kind(of folder: URL) throws -> TextRunKind {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw CLIError.runtime("\(folder.path): not a folder (--model takes a model folder: config.json, model.safetensors, tokenizer.json)")
        }
        let configURL = folder.appendingPathComponent(HFModelFolder.configFileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw CLIError.runtime("\(folder.path): not a model folder (no \(HFModelFolder.configFileName))")
        }
        let config: JSONValue
        do { config = try JSONValue(parsing: try FileContents.read(configURL)) } catch let e as JSONError {
            throw CLIError.runtime("\(configURL.path): not valid JSON (\(e))")
        }
        let type = config["model_type"]?.stringValue
        guard let kind = [TextRunKind.classification, .generation].first(where: { type.map($0.modelTypes.contains) ?? false }) else {
            throw CLIError.runtime("\(configURL.path): model_type is \(type.map { "'\($0)'" } ?? "missing"); text runs take BERT "
                + "encoders (model_type 'bert': classification) and T5 (model_type 't5' or 'mt5': text-to-text)")
        }
        return kind
    }

    /// Reads a model folder for a run of `kind` (nil: whichever its config says). A classifier gets `numLabels`
    /// outputs (its head, if any, must have that many; otherwise a fresh head seeded by `seed`).
    static func load(_ folder: URL, kind expected: TextRunKind? = nil, numLabels: Int?, seed: UInt64) throws -> TextBase {
        let kind = try Self.kind(of: folder)
        if let expected, kind != expected {
            throw CLIError.runtime("\(folder.path): a \(kind == .classification ? "BERT" : "T5") model, but the run is \(expected.rawValue)")
        }
        let tokenizerURL = folder.appendingPathComponent(tokenizerFileName)
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw CLIError.runtime("\(folder.path): no \(tokenizerFileName) (the `tokenizers` library's file, which polyctl reads; "
                + "save it with AutoTokenizer.from_pretrained(...).save_pretrained(folder))")
        }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(contentsOf: tokenizerURL) } catch let e as PolyPEFTError {
            throw CLIError.runtime(e.message.hasPrefix(tokenizerURL.path) ? e.message : "\(tokenizerURL.path): \(e.message)")
        }
        switch kind {
        case .classification:
            let (model, _, newPooler) = try BertForSequenceClassification.load(from: folder, numLabels: numLabels, seed: seed)
            return TextBase(model: model, kind: kind, tokenizer: tokenizer, folder: folder, newPooler: newPooler)
        case .generation:
            return TextBase(model: try T5ForConditionalGeneration.load(from: folder), kind: kind, tokenizer: tokenizer,
                            folder: folder, newPooler: false)
        }
    }

    /// Pre-trains the built-in tiny model of `kind` (`SyntheticTextTasks.pretrainedBase`, a BERT encoder and pooler;
    /// `SyntheticTextToTextTasks.pretrainedBase`, a T5) and saves it, with its tokenizer, as `dir/base_model` (one
    /// atomic directory), unless a run already saved it there.
    static func writeBuiltIn(_ kind: TextRunKind, in dir: URL, seed: UInt64, numLabels: Int) throws {
        let target = dir.appendingPathComponent(folderName)
        try AtomicDirectory.removeLeftovers(of: target)
        guard AtomicDirectory.resolve(target) == nil else { return }
        let config: JSONValue, weights: [String: Tensor], tokenizer: JSONValue
        switch kind {
        case .classification:
            let base = try SyntheticTextTasks.pretrainedBase(seed: seed)
            var c = SyntheticTextTasks.modelConfig.objectValue!
            c["num_labels"] = .int(numLabels)
            c["architectures"] = ["BertForSequenceClassification"]
            // The encoder and its pooler; the pretext's head is not the run's (the run trains its own, saved with the adapter).
            (config, weights, tokenizer) = (.object(c), base.stateDict().filter { $0.key.hasPrefix("bert.") }, SyntheticTextTasks.tokenizerJSON)
        case .generation:
            let base = try SyntheticTextToTextTasks.pretrainedBase(seed: seed)
            (config, weights, tokenizer) = (SyntheticTextToTextTasks.modelConfig, base.stateDict(), SyntheticTextToTextTasks.tokenizerJSON)
        }
        try AtomicDirectory.replace(target, with: [
            HFModelFolder.configFileName: Data(config.pythonStyleString(indent: 2, sortKeys: true).utf8),
            HFModelFolder.weightsFileName: try Safetensors.encode(weights, metadata: ["format": "pt"]),
            tokenizerFileName: Data(tokenizer.pythonStyleString(indent: 2, sortKeys: true).utf8),
        ])
    }
}

/// The data of a classification run: the built-in text tasks or a user's JSONL file split 80/10/10, labels as the
/// run's classifier outputs (relabelled to per-task heads when the run has them).
struct TextRunData {
    let train: TextClassificationData
    let validation: TextClassificationData
    let test: TextClassificationData

    /// The built-in text tasks' sizes per task (train, validation, test).
    static let builtInSamples = (train: 400, validation: 50, test: 50)

    /// Reads the data of `spec`: its task and label tables are the spec's, so a file changed since training is an
    /// error naming its line.
    static func load(_ spec: RunSpec, _ text: TextRunSpec, tokenizer: Tokenizer) throws -> TextRunData {
        let all: (TextClassificationData, TextClassificationData, TextClassificationData)
        if let path = spec.dataPath {
            let data = try read(path, text, tokenizer: tokenizer, taskNames: spec.taskNames, labelNames: text.labelNames)
            guard data.count >= 10 else { throw CLIError.runtime("\(path): needs at least 10 samples, has \(data.count)") }
            let (val, test, train) = RunSplit.indices(count: data.count, seed: spec.dataSeed)
            all = (data.subset(train), data.subset(val), data.subset(test))
        } else {
            let s = try SyntheticTextTasks(seed: spec.dataSeed, samplesPerTask: builtInSamples)
            all = (s.train, s.validation, s.test)
        }
        guard let heads = text.heads else { return TextRunData(train: all.0, validation: all.1, test: all.2) }
        let source = spec.dataPath ?? "built-in text data"
        return TextRunData(train: try heads.relabel(all.0, source: source), validation: try heads.relabel(all.1, source: source),
                           test: try heads.relabel(all.2, source: source))
    }

    /// A JSONL file of `{"task", "text", "label"}` lines, tokenized as the run says.
    static func read(_ path: String, _ text: TextRunSpec, tokenizer: Tokenizer, taskNames: [String]?,
                     labelNames: [String]?) throws -> TextClassificationData {
        try TextClassificationData.read(path, tokenizer: tokenizer, maxLength: text.maxLength,
                                        longTexts: text.truncate ? .truncate : .refuse, taskNames: taskNames, labelNames: labelNames)
    }
}

/// The data of a generation run: the built-in text-to-text tasks or a user's JSONL file (task, source, target)
/// split 80/10/10.
struct TextToTextRunData {
    let train: TextToTextData
    let validation: TextToTextData
    let test: TextToTextData

    /// Reads the data of `spec`, with its task table (a file changed since training is an error naming its line).
    static func load(_ spec: RunSpec, _ text: TextRunSpec, tokenizer: Tokenizer) throws -> TextToTextRunData {
        guard let path = spec.dataPath else {
            let s = try SyntheticTextToTextTasks(seed: spec.dataSeed, samplesPerTask: TextRunData.builtInSamples)
            return TextToTextRunData(train: s.train, validation: s.validation, test: s.test)
        }
        let data = try read(path, text, tokenizer: tokenizer, taskNames: spec.taskNames)
        guard data.count >= 10 else { throw CLIError.runtime("\(path): needs at least 10 samples, has \(data.count)") }
        let (val, test, train) = RunSplit.indices(count: data.count, seed: spec.dataSeed)
        return TextToTextRunData(train: data.subset(train), validation: data.subset(val), test: data.subset(test))
    }

    /// A JSONL file of `{"task", "source", "target"}` lines, tokenized as the run says.
    static func read(_ path: String, _ text: TextRunSpec, tokenizer: Tokenizer, taskNames: [String]?) throws -> TextToTextData {
        try TextToTextData.read(path, tokenizer: tokenizer, maxSourceLength: text.maxLength, maxTargetLength: text.maxTargetLength ?? text.maxLength,
                                longTexts: text.truncate ? .truncate : .refuse, taskNames: taskNames)
    }
}
