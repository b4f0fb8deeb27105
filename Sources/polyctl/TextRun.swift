import Foundation
import PolyPEFT

/// What a text run adds to its `RunSpec`: the BERT it adapts, how texts become ids, and the classifier's labels.
struct TextRunSpec: Codable, Equatable {
    /// The BERT folder (absolute), or nil for the built-in tiny BERT that `train` pre-trains and saves in the run
    /// folder (`TextBase.folderName`).
    var modelPath: String?
    /// The modules the adapter targets.
    var targets: [String]
    /// Tokens per text, with the special tokens; at most the model's `max_position_embeddings`.
    var maxLength: Int
    /// Longer texts are truncated (true) or refused with an error naming their line.
    var truncate: Bool
    /// The shared label space (every label name of the data, in order of first appearance).
    var labelNames: [String]
    /// One head per task (`--heads per-task`); nil: every task predicts over `labelNames`.
    var heads: TaskHeads?
    /// The checkpoint has no pooler: the fresh one trains and is saved with the adapter (`modules_to_save`).
    var trainPooler: Bool

    /// The classifier's outputs.
    var outputCount: Int { heads?.outputCount ?? labelNames.count }

    /// The label an output stands for.
    func label(ofOutput o: Int) -> String { heads.map { $0.outputNames[o].label } ?? labelNames[o] }

    func validate(file: String, taskCount: Int) throws {
        guard (1...Tokenizer.maxPaddedLength).contains(maxLength) else {
            throw CLIError.runtime("\(file): text.maxLength is \(maxLength), not in 1...\(Tokenizer.maxPaddedLength)")
        }
        guard !labelNames.isEmpty, Set(labelNames).count == labelNames.count else {
            throw CLIError.runtime("\(file): text.labelNames must be distinct names, at least one")
        }
        guard !targets.isEmpty else { throw CLIError.runtime("\(file): text.targets is empty") }
        do { try heads?.validate(taskCount: taskCount, source: "\(file): text.heads") } catch let e as PolyPEFTError {
            throw CLIError.runtime(e.message)
        }
    }

    /// The modules adapted when `--targets` is not given: the built-in tiny BERT's attention and feed-forward
    /// layers; PEFT's defaults for BERT (`query`, `value`) on a user's model.
    static func defaultTargets(builtIn: Bool) -> [String] {
        builtIn ? ["query", "value", "intermediate.dense", "output.dense"] : DefaultTargets.lora["bert"]!
    }
}

/// The BERT classifier a text run adapts, with its tokenizer.
struct TextBase {
    /// The built-in base inside a run folder: a BERT folder as published (`config.json`, `model.safetensors`,
    /// `tokenizer.json`), which transformers' `from_pretrained` reads too.
    static let folderName = "base_model"
    static let tokenizerFileName = "tokenizer.json"

    let classifier: BertForSequenceClassification
    let tokenizer: Tokenizer
    let folder: URL
    /// The checkpoint had no pooler (a fresh one was made).
    let newPooler: Bool

    /// The id padding positions hold: the tokenizer's padding id, else its `[PAD]`, else 0.
    var padID: Int { tokenizer.padding?.id ?? tokenizer.id(for: "[PAD]") ?? 0 }

    /// The folder of a run's base: the user's model, or the built-in one saved in the run folder.
    static func folder(of text: TextRunSpec, runDir: URL) -> URL {
        text.modelPath.map { URL(fileURLWithPath: $0) }
            ?? AtomicDirectory.resolve(runDir.appendingPathComponent(folderName)) ?? runDir.appendingPathComponent(folderName)
    }

    /// Reads a BERT folder with `numLabels` outputs (its head, if any, must have that many; otherwise a fresh head
    /// seeded by `seed`). Anything but a BERT folder with a `tokenizer.json` is an error naming the folder or file.
    static func load(_ folder: URL, numLabels: Int?, seed: UInt64) throws -> TextBase {
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
        guard type == "bert" else {
            throw CLIError.runtime("\(configURL.path): model_type is \(type.map { "'\($0)'" } ?? "missing"); text classification "
                + "runs on BERT encoders (model_type 'bert')")
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
        let (model, _, newPooler) = try BertForSequenceClassification.load(from: folder, numLabels: numLabels, seed: seed)
        return TextBase(classifier: model, tokenizer: tokenizer, folder: folder, newPooler: newPooler)
    }

    /// Pre-trains the built-in tiny BERT (`SyntheticTextTasks.pretrainedBase`) and saves it, with its tokenizer,
    /// as `dir/base_model` (one atomic directory), unless a run already saved it there.
    static func writeBuiltIn(in dir: URL, seed: UInt64, numLabels: Int) throws {
        let target = dir.appendingPathComponent(folderName)
        try AtomicDirectory.removeLeftovers(of: target)
        guard AtomicDirectory.resolve(target) == nil else { return }
        let base = try SyntheticTextTasks.pretrainedBase(seed: seed)
        var config = SyntheticTextTasks.modelConfig.objectValue!
        config["num_labels"] = .int(numLabels)
        config["architectures"] = ["BertForSequenceClassification"]
        // The encoder and its pooler; the pretext's head is not the run's (the run trains its own, saved with the adapter).
        let encoder = base.stateDict().filter { $0.key.hasPrefix("bert.") }
        try AtomicDirectory.replace(target, with: [
            HFModelFolder.configFileName: Data(JSONValue.object(config).pythonStyleString(indent: 2, sortKeys: true).utf8),
            HFModelFolder.weightsFileName: try Safetensors.encode(encoder, metadata: ["format": "pt"]),
            tokenizerFileName: Data(SyntheticTextTasks.tokenizerJSON.pythonStyleString(indent: 2, sortKeys: true).utf8),
        ])
    }
}

/// The data of a text run: the built-in text tasks or a user's JSONL file split 80/10/10, labels as the run's
/// classifier outputs (relabelled to per-task heads when the run has them).
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
    static func read(_ path: String, _ text: TextRunSpec?, tokenizer: Tokenizer, maxLength: Int? = nil, truncate: Bool? = nil,
                     taskNames: [String]?, labelNames: [String]?) throws -> TextClassificationData {
        try TextClassificationData.read(path, tokenizer: tokenizer, maxLength: maxLength ?? text!.maxLength,
                                        longTexts: truncate ?? text!.truncate ? .truncate : .refuse,
                                        taskNames: taskNames, labelNames: labelNames)
    }
}
