import Foundation
import PolyPEFT

/// The adapters `polyctl train` trains, spelled as `--method` takes them and as `polypeft_run.json` stores them.
enum RunMethod: String, Codable, CaseIterable {
    case poly, mhr, lora, ia3, dora, beft, bitfit, ssf, sparse
    case lnTuning = "ln-tuning", promptTuning = "prompt-tuning", pTuning = "p-tuning", prefixTuning = "prefix-tuning"
    case seqBn = "seq-bn", doubleSeqBn = "double-seq-bn", parBn = "par-bn", compacter, compacterPP = "compacter-pp"
    case adaptersLoRA = "adapters-lora", adaptersIA3 = "adapters-ia3", adaptersPrefix = "adapters-prefix"
    case mam, unipelt

    /// Poly and MHR route skills per task; the others are one adapter shared by every task.
    var isRouted: Bool { self == .poly || self == .mhr }

    /// PEFT's methods that learn virtual tokens or key/value prefixes (they take positions of a BERT).
    var isPromptLearning: Bool { self == .promptTuning || self == .pTuning || self == .prefixTuning }

    /// The adapters library's prefix tuning, alone or in its unions (MAM, UniPELT): prefixes on every attention.
    var hasAdaptersPrefix: Bool { self == .adaptersPrefix || isUnion }

    /// The adapters library's unions (`ConfigUnion.mam()`, `.uniPELT()`).
    var isUnion: Bool { self == .mam || self == .unipelt }

    /// Methods whose prefix length or virtual tokens `--virtual-tokens` sets.
    var takesVirtualTokens: Bool { isPromptLearning || hasAdaptersPrefix }

    /// Bottleneck adapters (the adapters library's presets, `BnConfig`): placed after sublayers, not on targets.
    var isBottleneck: Bool { bottleneckPreset != nil }

    /// The adapters library's preset of a bottleneck method, at its own reduction factor.
    var bottleneckPreset: BnConfig? {
        switch self {
        case .seqBn: .seqBn()
        case .doubleSeqBn: .doubleSeqBn()
        case .parBn: .parBn()
        case .compacter: .compacter()
        case .compacterPP: .compacterPlusPlus()
        default: nil
        }
    }

    /// The bottleneck adapter of a method, alone or as a union's part (MAM's parallel adapter, UniPELT's sequential
    /// one): what `--reduction-factor` sets.
    var bottleneckPart: BnConfig? {
        switch self {
        case .mam: .parBn()
        case .unipelt: .seqBn()
        default: bottleneckPreset
        }
    }

    /// The adapters library's LoRA and (IA)^3 (`AdaptersLoRAConfig`): placed by location in a transformer's layers.
    var isAdaptersLoRA: Bool { self == .adaptersLoRA || self == .adaptersIA3 }

    /// Methods with the adapters library's learned gate as an option (`--gating`); UniPELT is always gated.
    var isGateable: Bool { isBottleneck || isAdaptersLoRA || self == .adaptersPrefix || self == .mam }

    /// Methods whose gates can read a task table instead (`--task-gates`, PolyPEFT's task-routed gates).
    var takesTaskGates: Bool { isGateable || self == .unipelt }

    /// Methods that adapt the model's inputs, the joins after its sublayers or its layers by location, not named
    /// modules (no `--targets`).
    var placesItself: Bool { isPromptLearning || isBottleneck || isAdaptersLoRA || hasAdaptersPrefix }

    /// Methods that need a transformer (norms to tune, token inputs, sublayers to follow): text runs only.
    var needsText: Bool { placesItself || self == .lnTuning }

    /// The name output uses.
    var label: String {
        switch self {
        case .poly: "Poly"
        case .mhr: "MHR"
        case .lora: "LoRA"
        case .ia3: "IA3"
        case .dora: "DoRA"
        case .beft: "BEFT"
        case .bitfit: "BitFit"
        case .ssf: "SSF"
        case .sparse: "sparse fine-tuning"
        case .lnTuning: "LN tuning"
        case .promptTuning: "prompt tuning"
        case .pTuning: "P-tuning"
        case .prefixTuning: "prefix tuning"
        case .seqBn: "sequential bottleneck adapter (Pfeiffer)"
        case .doubleSeqBn: "double bottleneck adapter (Houlsby)"
        case .parBn: "parallel bottleneck adapter"
        case .compacter: "Compacter"
        case .compacterPP: "Compacter++"
        case .adaptersLoRA: "LoRA (adapters library)"
        case .adaptersIA3: "(IA)^3 (adapters library)"
        case .adaptersPrefix: "prefix tuning (adapters library)"
        case .mam: "Mix-and-Match adapter (MAM)"
        case .unipelt: "UniPELT"
        }
    }
}

/// What a `polyctl train` run is made of, saved as `polypeft_run.json` in the output folder so that `eval`, `infer`,
/// `inspect` and `--resume` rebuild the same base model, data and adapter.
struct RunSpec: Codable, Equatable {
    static let fileName = "polypeft_run.json"
    static let baseWeightsFileName = "base_model.safetensors"

    var format = 1
    var method: RunMethod
    var mixing: MixingMode
    var skills: Int
    var splits: Int
    var rank: Int
    /// Path of the user's data file, or nil for the built-in data.
    var dataPath: String?
    /// Seed of the built-in data and of the random base network (user data).
    var dataSeed: UInt64
    /// The width of the base network's hidden layer (numeric runs); the transformer's hidden size (text runs).
    var hiddenDim: Int
    var taskNames: [String]
    var training: TrainingConfiguration
    /// IA3: the targets whose input is scaled (PEFT's `feedforward_modules`); nil for the other methods.
    var feedforward: [String]? = nil
    /// Prompt learning: the virtual tokens (or prefix positions); nil for the other methods.
    var virtualTokens: Int? = nil
    /// Bottleneck adapters: the reduction factor (hidden size / bottleneck width); nil for the other methods.
    var reductionFactor: Double? = nil
    /// Bottleneck adapters, the adapters library's LoRA / (IA)^3, prefix tuning and MAM: a learned gate per sample
    /// (`use_gating`); nil for the other methods.
    var gating: Bool? = nil
    /// Gated methods and UniPELT: gates read a table of task logits (`polypeft_task_gates`) instead of the input;
    /// nil for the other methods.
    var taskGates: Bool? = nil
    /// Sparse fine-tuning: the fraction of the targeted weights that trains; nil for the other methods.
    var density: Double? = nil
    /// Sparse fine-tuning: how the entries are chosen; nil for the other methods.
    var selection: SparseConfig.Selection? = nil
    /// Sparse fine-tuning by Fisher information: the entries per layer chosen at the start (so a resumed run attaches
    /// the same layout); nil before the choice and for the other methods.
    var budgetPattern: [String: Int]? = nil
    /// Text runs: the model, its tokenizer settings and labels; nil for numeric runs.
    var text: TextRunSpec? = nil

    /// Whether the run's adapter has gates (`--gating`, `--task-gates`, or UniPELT's own).
    var isGated: Bool { gating == true || method == .unipelt }

    /// The layers a numeric run adapts.
    static let targets = ["fc1", "fc2"]

    /// The adapter configuration this run trains: Poly / MHR with `skills` x `splits` routed LoRAs of rank `rank`;
    /// one LoRA or DoRA of rank `rank` (alpha = rank, PEFT's default init: B = 0, so training starts at the base); or
    /// IA3 with `feedforward` as its feed-forward modules (scales start at 1, also the base).
    ///
    /// Text runs adapt `text.targets`; a classifier trains its head as PEFT's sequence classification does
    /// (`task_type` `SEQ_CLS`: the classifier joins `modules_to_save`; a pooler the checkpoint lacks joins too), a
    /// T5 is `SEQ_2_SEQ_LM`.
    func adapterConfig() -> any PeftConfig {
        let targets = TargetModules.names(text?.targets ?? RunSpec.targets)
        var config: any PeftConfig
        switch method {
        case .poly, .mhr:
            config = PolyConfig(r: rank, targetModules: targets, nTasks: taskNames.count, nSkills: skills,
                                nSplits: splits, initWeights: true, mixing: mixing)
        case .lora, .dora:
            var c = LoraConfig(r: rank, loraAlpha: Double(rank), targetModules: targets)
            c.initLoraWeights = .kaiming
            c.useDora = method == .dora
            config = c
        case .ia3:
            config = IA3Config(targetModules: targets, feedforwardModules: .names(feedforward ?? []))
        case .beft:
            config = BeftConfig(targetModules: targets)
        case .bitfit:
            // No targets: every bias of the model.
            config = BitFitConfig(targetModules: text?.targets.isEmpty == true ? nil : targets)
        case .lnTuning:
            config = LNTuningConfig(targetModules: targets)
        case .ssf:
            config = SSFConfig(targetModules: targets)
        case .sparse:
            var c = SparseConfig(targetModules: targets, density: density ?? 0.05, selection: selection ?? .magnitude)
            c.budgetPattern = budgetPattern ?? [:]
            config = c
        case .promptTuning:
            config = PromptTuningConfig(numVirtualTokens: virtualTokens ?? 1)
        case .pTuning:
            config = PromptEncoderConfig(numVirtualTokens: virtualTokens ?? 1)
        case .prefixTuning:
            config = PrefixTuningConfig(numVirtualTokens: virtualTokens ?? 1)
        case .seqBn, .doubleSeqBn, .parBn, .compacter, .compacterPP:
            var c = method.bottleneckPreset!
            c.reductionFactor = .uniform(reductionFactor ?? 16)
            c.useGating = gating ?? false
            config = c
        case .adaptersLoRA, .adaptersIA3:
            var c = method == .adaptersLoRA ? AdaptersLoRAConfig.lora(r: rank, alpha: Double(rank)) : .ia3()
            c.useGating = gating ?? false
            config = c
        case .adaptersPrefix:
            var c = AdaptersPrefixConfig(prefixLength: virtualTokens ?? 1)
            c.useGating = gating ?? false
            config = c
        case .mam, .unipelt:
            var adapter = method.bottleneckPart!
            adapter.reductionFactor = .uniform(reductionFactor ?? 16)
            var union = method == .mam
                ? ConfigUnion.mam(prefixTuning: AdaptersPrefixConfig(prefixLength: virtualTokens ?? 1, bottleneckSize: 800), adapter: adapter)
                : ConfigUnion.uniPELT(prefixTuning: AdaptersPrefixConfig(prefixLength: virtualTokens ?? 1), adapter: adapter,
                                      lora: AdaptersLoRAConfig.lora(r: rank, alpha: 2))
            if gating == true {
                union.configs = union.configs.map { part in
                    guard var g = part as? any GateableConfig else { return part }
                    g.useGating = true
                    return g
                }
            }
            config = union
        }
        if taskGates == true {
            config = Self.routingGates(of: config, byTask: taskNames.count)
        }
        switch text?.kind {
        case .classification?:
            config.taskType = "SEQ_CLS"
            config.modulesToSave = ["classifier"] + (text!.trainPooler ? ["pooler"] : [])
        case .generation?:
            config.taskType = "SEQ_2_SEQ_LM"
        case nil:
            break
        }
        return config
    }

    /// `config` with its gates (a union's parts' gates) reading a table of `tasks` task logits.
    static func routingGates(of config: any PeftConfig, byTask tasks: Int) -> any PeftConfig {
        if var union = config as? ConfigUnion {
            union.configs = union.configs.map { routingGates(of: $0, byTask: tasks) }
            return union
        }
        guard var g = config as? any GateableConfig, g.useGating else { return config }
        g.taskGates = tasks
        return g
    }

    /// The adapter config's keys that this run's settings determine must say what `polypeft_run.json` says (a
    /// folder edited by hand, or mixed from two runs, is an error naming the key, not a silently different model).
    func check(against config: any PeftConfig, in dir: URL) throws {
        let expected = adapterConfig().json, found = config.json
        for key in ["peft_type", "r", "n_tasks", "n_skills", "n_splits", "polypeft_mixing", "polypeft_task_gates", "use_dora", "feedforward_modules",
                    "task_type", "num_virtual_tokens",
                    "reduction_factor", "is_parallel", "phm_layer", "mh_adapter", "output_adapter", "density", "selection",
                    "use_gating", "composition_mode"] {
            let e = expected[key], f = found[key]
            guard e != f else { continue }
            let show = { (v: JSONValue?) in v.map { $0.compactString() } ?? "absent" }
            throw CLIError.runtime("\(dir.appendingPathComponent(PeftAdapterFolder.configFileName).path): \(key) is \(show(f)), "
                + "but \(RunSpec.fileName) says \(show(e)) (the folder was edited or holds files of two runs)")
        }
    }

    func write(to dir: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(self), to: dir.appendingPathComponent(RunSpec.fileName))
    }

    /// True when `dir` holds a run description (`polypeft_run.json`).
    static func isRunFolder(_ dir: URL) -> Bool {
        FileManager.default.fileExists(atPath: dir.appendingPathComponent(fileName).path)
    }

    /// Throws unless `dir` holds a run description.
    static func requireRunFolder(_ dir: URL) throws {
        guard isRunFolder(dir) else { throw CLIError.runtime("\(dir.path) is not a polyctl run folder (no \(fileName))") }
    }

    /// Decodes a JSON file written by polyctl, after the library's strict parser has accepted it (Foundation's
    /// decoder lets duplicate keys and trailing commas through); errors name the file.
    static func decodeStrictly<T: Decodable>(_ url: URL, what: String) throws -> T {
        let data = try FileContents.read(url)
        do { _ = try JSONValue(parsing: data) } catch let e as JSONError {
            throw CLIError.runtime("\(url.path): not \(what): invalid JSON (\(e))")
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw CLIError.runtime("\(url.path): not \(what) (\(error))")
        }
    }

    static func read(from dir: URL) throws -> RunSpec {
        let url = dir.appendingPathComponent(fileName)
        try requireRunFolder(dir)
        let spec: RunSpec = try decodeStrictly(url, what: "a valid run description")
        try spec.validate(file: url.path)
        return spec
    }

    /// The widths of the base network's hidden layer a run may have (`polyctl train` uses 64).
    static let hiddenDimRange = 1...4096

    /// Checks the numbers `polyctl train` itself checks on its options (the same ranges), so that a damaged or
    /// hand-edited file is an error naming the key, not a crash, an allocation of its size or a run of 2^62 steps.
    func validate(file: String) throws {
        let t = training
        let integers: [(key: String, value: Int, range: ClosedRange<Int>)] = [
            ("format", format, 1...1), ("skills", skills, RunSpec.optionRange("skills")),
            ("splits", splits, RunSpec.optionRange("splits")), ("rank", rank, RunSpec.optionRange("rank")),
            ("hiddenDim", hiddenDim, RunSpec.hiddenDimRange), ("training.steps", t.steps, RunSpec.optionRange("steps")),
            ("training.batchSize", t.batchSize, RunSpec.optionRange("batch-size")),
            ("training.evalEvery", t.evalEvery, RunSpec.optionRange("eval-every")),
            ("training.warmupSteps", t.warmupSteps, 0...Swift.max(t.steps, 0)),   // steps < 1 is refused first
        ]
        for (key, value, range) in integers where !range.contains(value) {
            throw CLIError.runtime("\(file): \(key) is \(value), not in \(range.lowerBound)...\(range.upperBound)")
        }
        let rates: [(key: String, value: Float)] = [("training.learningRate", t.learningRate),
                                                    ("training.routerLearningRate", t.routerLearningRate)]
        for (key, value) in rates where !(value > 0 && value.isFinite) {
            throw CLIError.runtime("\(file): \(key) is \(value), not a positive number")
        }
        for (key, value) in [("training.weightDecay", t.weightDecay), ("training.clipNorm", t.clipNorm)]
        where !(value >= 0 && value.isFinite) {
            throw CLIError.runtime("\(file): \(key) is \(value), not a number >= 0")
        }
        if let v = virtualTokens, !RunSpec.optionRange("virtual-tokens").contains(v) {
            throw CLIError.runtime("\(file): virtualTokens is \(v), not in \(RunSpec.optionRange("virtual-tokens"))")
        }
        if method.takesVirtualTokens != (virtualTokens != nil) {
            throw CLIError.runtime("\(file): virtualTokens must be given for \(method.rawValue) runs only")
        }
        if let f = reductionFactor, !(f.isFinite && f > 0) {
            throw CLIError.runtime("\(file): reductionFactor is \(f), not a positive number")
        }
        if let d = density, !(d.isFinite && d > 0 && d <= 1) {
            throw CLIError.runtime("\(file): density is \(d), not in (0, 1]")
        }
        if (method == .sparse) != (density != nil) {
            throw CLIError.runtime("\(file): density must be given for sparse runs only")
        }
        if method != .sparse && selection != nil { throw CLIError.runtime("\(file): selection is for sparse runs only") }
        if let p = budgetPattern {
            guard selection == .fisher else { throw CLIError.runtime("\(file): budgetPattern is for sparse runs by Fisher information only") }
            if let bad = p.first(where: { $0.value < 0 }) { throw CLIError.runtime("\(file): budgetPattern gives '\(bad.key)' \(bad.value) entries") }
        }
        if method.isGateable != (gating != nil) {
            throw CLIError.runtime("\(file): gating must be given for bottleneck, adapters-library and MAM runs only")
        }
        if !method.takesTaskGates && taskGates != nil {
            throw CLIError.runtime("\(file): taskGates is for runs of gated methods only")
        }
        if (method.bottleneckPart != nil) != (reductionFactor != nil) {
            throw CLIError.runtime("\(file): reductionFactor must be given for bottleneck, MAM and UniPELT runs only")
        }
        try text?.validate(file: file, taskCount: taskNames.count,
                           targets: method.placesItself ? .none : method == .bitfit ? .optional : .required)
    }

    /// The range of `polyctl train`'s integer option `name`, as its option table declares it.
    static func optionRange(_ name: String) -> ClosedRange<Int> {
        guard case .int(let range)? = TrainCommand.options.first(where: { $0.name == name })?.kind else {
            preconditionFailure("RunSpec: '--\(name)' is not an integer option of train")
        }
        return range
    }
}

/// The data of a run: built-in synthetic tasks (with their known allocation) or a user's file split 80/10/10.
struct RunData {
    let train: MultitaskDataset
    let validation: MultitaskDataset
    let test: MultitaskDataset
    /// The built-in generator, when the data is built in (true allocation, held-out tasks).
    let synthetic: SyntheticTasks?
    let baseWeights: [String: Tensor]

    /// - Parameter taskNames: the run's task names (`polypeft_run.json`), which task ids index, so the data must use
    ///   them: the built-in data must have exactly these names, and a file's task that is not among them is an error
    ///   naming its line (a saved run whose file or names were changed). Nil: the data's own names (benchmarks).
    static func load(dataPath: String?, seed: UInt64, hiddenDim: Int, taskNames: [String]? = nil) throws -> RunData {
        guard let dataPath else {
            var c = SyntheticTasks.Configuration()
            c.seed = seed
            let s = try SyntheticTasks(c)
            if let taskNames, taskNames != s.taskNames {
                throw CLIError.runtime("\(RunSpec.fileName): its \(taskNames.count) taskNames are not the \(s.taskNames.count) tasks "
                    + "of the built-in data (\(s.taskNames.prefix(3).joined(separator: ", ")), ...)")
            }
            return RunData(train: s.train, validation: s.validation, test: s.test, synthetic: s, baseWeights: s.baseWeights)
        }
        let all = try MultitaskDataFile.read(dataPath, taskNames: taskNames)
        guard all.count >= 10 else { throw CLIError.runtime("\(dataPath): needs at least 10 samples, has \(all.count)") }
        let (v, t, tr) = RunSplit.indices(count: all.count, seed: seed)
        let val = all.subset(v), test = all.subset(t), train = all.subset(tr)
        // A frozen random base network in -> hidden -> out.
        var wg = Xoshiro256(seed: seed &+ 1)
        let mlp = try MLP(MLPShape.ops(input: all.inputDim, hidden: hiddenDim, output: all.targetDim), using: &wg)
        return RunData(train: train, validation: val, test: test, synthetic: nil, baseWeights: mlp.stateDict())
    }
}

/// The seeded 80/10/10 split of a user's data file, stratified by nothing (tasks keep their share on average).
enum RunSplit {
    /// Validation, test and training sample indices of `count` samples (count >= 10).
    static func indices(count: Int, seed: UInt64) -> (validation: [Int], test: [Int], train: [Int]) {
        var g = Xoshiro256(seed: seed)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        let nVal = Swift.max(1, count / 10)
        return (Array(order[0..<nVal]), Array(order[nVal..<(2 * nVal)]), Array(order[(2 * nVal)...]))
    }
}

enum MLPShape {
    /// fc1 (in -> hidden), relu, fc2 (hidden -> out): the base network of every polyctl run.
    static func ops(input: Int, hidden: Int, output: Int) -> [MLP.Op] {
        [.linear(name: "fc1", inFeatures: input, outFeatures: hidden, bias: true), .activation(.relu),
         .linear(name: "fc2", inFeatures: hidden, outFeatures: output, bias: true)]
    }

    /// The base network with `weights` loaded.
    static func model(_ weights: [String: Tensor]) throws -> MLP {
        guard let w1 = weights["fc1.weight"], let w2 = weights["fc2.weight"], w1.rank == 2, w2.rank == 2 else {
            throw CLIError.runtime("base weights need fc1.weight and fc2.weight matrices")
        }
        var g = Xoshiro256(seed: 0)
        let mlp = try MLP(ops(input: w1.shape[1], hidden: w1.shape[0], output: w2.shape[0]), using: &g)
        try mlp.loadStateDict(weights, source: "base weights")
        return mlp
    }
}
