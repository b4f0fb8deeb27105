import Foundation
import PolyPEFT

/// `polyctl inspect DIR`: what an adapter folder holds — config, parameter counts, per-layer routing as heatmaps,
/// skill usage and sparsity. A run folder is first opened as `eval` opens it (every tensor checked against the
/// config and the base network); a PEFT-written folder (no base network) is checked as far as its own files go:
/// at least one tensor, finite values, router logits that fit the config. A folder of the adapters library
/// (`adapter.safetensors`) is read in its format.
enum InspectCommand: Subcommand {
    static let name = "inspect"
    static let overview = "Show an adapter's config, sizes and routing (PolyPEFT, PEFT or adapters-library folders)."
    static let usage = "inspect <dir> [--json] [--numbers] [--gates [--svg <file>]]"
    static let maxPositionals = 1
    static let options: [OptionSpec] = [
        .flag("numbers", "Print routing weights as numbers instead of shades."),
        .flag("json", "Machine-readable output."),
        .flag("gates", "Gated runs: the mean gate of each task at every layer and location on the run's test set."),
        .text("svg", "<file>", "With --gates: also draw them as a heatmap (SVG)."),
        .allowNonFinite,
    ]

    static func validate(_ args: ParsedArguments) throws {
        guard !args.positionals.isEmpty else { throw CLIError.usage("missing the adapter folder", hint: args.hint) }
        if args.isGiven("svg") && !args.flag("gates") { throw CLIError.usage("'--svg' needs '--gates'", hint: args.hint) }
    }

    /// Eval-mode routing weights `[T, S, K]` from a router's logits `[T, S*K]`: the library's own router with the
    /// config's routing options (straight-through, shared skill, ...), so what is shown is what a forward uses.
    static func routing(logits: Tensor, config c: PolyConfig) throws -> Tensor {
        let (width, overflow) = c.nSplits.multipliedReportingOverflow(by: c.nSkills)
        guard !overflow, logits.rank == 2, logits.shape[0] == c.nTasks, logits.shape[0] > 0, logits.shape[1] == width else {
            throw CLIError.runtime("router logits \(logits.shape) do not match n_tasks \(c.nTasks) x (n_splits \(c.nSplits) x "
                + "n_skills \(c.nSkills))")
        }
        var rng = Xoshiro256(seed: 0)                      // the initial logits are replaced below
        let router = PolyRouter(nTasks: logits.shape[0], nSkills: c.nSkills, nSplits: c.nSplits, using: &rng)
        router.options = c.routing
        router.moduleLogits.value = logits
        return try router.allocation()
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let dir = URL(fileURLWithPath: args.positionals[0])
        let allowNonFinite = args.flag("allow-non-finite")
        if args.flag("gates") {
            guard RunSpec.isRunFolder(dir) else { throw CLIError.runtime("\(dir.path): --gates needs a polyctl run folder (its model and test set)") }
            let run = try RunModel.open(dir.path, allowNonFinite: allowNonFinite, console: console)
            return try InspectGates.run(run, svg: args.string("svg"), numbers: args.flag("numbers"), json: args.flag("json"), console)
        }
        if RunSpec.isRunFolder(dir) {
            _ = try RunModel.open(dir.path, allowNonFinite: allowNonFinite, console: console)
        } else if AdapterHubFolder.isAdapterHubFolder(dir)
                    && !FileManager.default.fileExists(atPath: dir.appendingPathComponent(PeftAdapterFolder.weightsFileName).path) {
            return try runAdapterHub(dir, args, console)
        }
        let (json, tensors) = try PeftAdapterFolder.read(from: dir)
        let weights = dir.appendingPathComponent(PeftAdapterFolder.weightsFileName).path
        let config = try PeftMethods.config(json: json, context: dir.appendingPathComponent(PeftAdapterFolder.configFileName).path)
        // (a run folder's tensors were checked, or warned about, when it was opened above)
        try checkTensors(tensors, source: weights, allowNonFinite: allowNonFinite, warn: !RunSpec.isRunFolder(dir), console)
        let names = (try? RunSpec.read(from: dir))?.taskNames
        // Sparse fine-tuning saves its entries' positions beside their values: positions are not parameters.
        let positions = tensors.filter { $0.key.hasSuffix("." + SparseLinear.indicesName) }
        let total = tensors.filter { positions[$0.key] == nil }.values.reduce(0) { $0 + $1.count }
        var layers: [(path: String, weights: Tensor)] = []
        if let c = config as? PolyConfig {
            let suffix = ".poly_router.module_logits"
            for key in tensors.keys.sorted() where key.hasSuffix(suffix) {
                let layer = String(key.dropFirst(PeftModel.keyPrefix.count).dropLast(suffix.count))
                layers.append((layer, try routing(logits: tensors[key]!, config: c)))
            }
        }
        if args.flag("json") {
            var o: [String: JSONValue] = ["config": json, "adapter_parameters": .int(total),
                                          "tensors": .object(tensors.mapValues { .array($0.shape.map { .int($0) }) })]
            o["routing"] = .object(Dictionary(uniqueKeysWithValues: layers.map { l in
                (l.path, JSONValue.array(matrix(l.weights).map { .array($0.map { $0.isFinite ? .double(Double($0)) : .null }) }))
            }))
            console.print(JSONValue.object(o).pythonStyleString(indent: 2, sortKeys: true))
            return
        }
        console.print("Adapter: \(dir.path)")
        console.print("Type: \(config.summary)")
        let targets: String
        if let bn = config as? BnConfig {
            targets = "none (bottleneck adapters after the sublayers: \(bn.locations.map(\.rawValue).joined(separator: ", ")))"
        } else if type(of: config).isPromptLearning {
            targets = "none (prompt learning feeds the model's inputs and attention)"
        } else {
            targets = config.targetModules?.summary ?? (config is BitFitConfig ? "every bias" : "(model default)")
        }
        console.print("Targets: \(targets)")
        console.print("Adapter parameters: \(groupThousands(total)) in \(tensors.count - positions.count) tensors"
            + (positions.isEmpty ? "" : " (and the positions of those entries in \(positions.count) index tensors)"))
        for w in config.warnings { console.print("note: \(w)") }
        for (layer, w) in layers {
            let m = matrix(w)
            let rows = names?.count == m.count ? names! : (0..<m.count).map { "task\($0)" }
            console.print("")
            console.print("Routing of \(layer) (task x skill, averaged over \(w.shape[1]) split\(w.shape[1] == 1 ? "" : "s")):")
            var map = TerminalHeatmap(rowLabels: rows, columnLabels: (0..<m[0].count).map { "s\($0)" }, values: m)
            map.range = 0...1
            map.color = console.isTerminal
            if args.flag("numbers") { map.style = .numbers(decimals: 2) }
            console.write(map.render())
            let usage = RoutingDiagnostics.skillUsage(m).map { formatFixed(Double($0), digits: 2) }.joined(separator: " ")
            console.print("skill usage: \(usage)   effective skills: \(formatFixed(Double(RoutingDiagnostics.effectiveSkillCount(m)), digits: 2))   sparsity: \(formatFixed(Double(RoutingDiagnostics.sparsity(m)), digits: 2))   discreteness: \(formatFixed(Double(RoutingDiagnostics.discreteness(m)), digits: 2))")
        }
    }

    /// An adapter file's tensors: at least one, and no NaN or infinity (the error names the tensor and element) unless
    /// `allowNonFinite`, which warns about them instead when `warn`.
    static func checkTensors(_ tensors: [String: Tensor], source: String, allowNonFinite: Bool, warn: Bool, _ console: Console) throws {
        guard !tensors.isEmpty else { throw CLIError.runtime("\(source): holds no tensors") }
        if allowNonFinite {
            if warn { RunModel.warnNonFinite(tensors, source: source, console) }
        } else {
            for key in tensors.keys.sorted() { try NonFiniteWeightsError.check(tensors[key]!, key: key, source: source) }
        }
    }

    /// An adapters-library folder: its metadata, the method's config and sizes (an alias the library stores twice,
    /// such as `ln_before`'s LayerNorm, counted once).
    static func runAdapterHub(_ dir: URL, _ args: ParsedArguments, _ console: Console) throws {
        let folder = try AdapterHubFolder.read(from: dir)
        let weights = dir.appendingPathComponent(AdapterHubFolder.weightsFileName).path
        let config = try AdapterHubMethods.config(adapterHubConfig: folder.config,
                                                  context: dir.appendingPathComponent(AdapterHubFolder.configFileName).path + " config")
        try checkTensors(folder.tensors, source: weights, allowNonFinite: args.flag("allow-non-finite"), warn: true, console)
        let own = folder.tensors.filter { !AdapterHubMethods.isAlias($0.key, name: folder.name, in: folder.tensors) }
        let total = own.values.reduce(0) { $0 + $1.count }
        if args.flag("json") {
            let o: [String: JSONValue] = ["format": "adapters", "adapter_config": folder.configFile, "adapter_parameters": .int(total),
                                          "tensors": .object(folder.tensors.mapValues { .array($0.shape.map { .int($0) }) })]
            console.print(JSONValue.object(o).pythonStyleString(indent: 2, sortKeys: true))
            return
        }
        console.print("Adapter: \(dir.path) (adapters library format)")
        let model = [folder.modelClass, folder.modelType.map { "model_type \($0)" }, folder.hiddenSize.map { "hidden \($0)" }]
            .compactMap { $0 }.joined(separator: ", ")
        console.print("Name: \(folder.name)   Model: \(model.isEmpty ? "(not recorded)" : model)   Version: \(folder.version ?? "(none)")")
        console.print("Type: \(config.summary)")
        if let bn = config as? BnConfig {
            console.print("Targets: none (bottleneck adapters after the sublayers: \(bn.locations.map(\.rawValue).joined(separator: ", ")))")
        }
        console.print("Adapter parameters: \(groupThousands(total)) in \(own.count) tensors")
        for w in config.warnings { console.print("note: \(w)") }
    }

    /// `[T, S, K]` averaged over splits as rows of floats.
    static func matrix(_ w: Tensor) -> [[Float]] {
        let m = (try? w.mean(axes: [1])) ?? w
        let k = m.shape[1]
        let v = m.scalars
        return (0..<m.shape[0]).map { Array(v[($0 * k)..<(($0 + 1) * k)]) }
    }
}
