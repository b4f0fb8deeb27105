import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Several methods on one model, as the adapters library's `ConfigUnion` composes them (for example two bottleneck
/// adapters with different reduction factors, one after attention and one after the feed-forward). PEFT has no such
/// config, so in PEFT-style files it lives in PolyPEFT's namespace:
///
/// ```
/// {"peft_type": "POLYPEFT_UNION", "configs": [{"peft_type": "POLYPEFT_BOTTLENECK", ...}, {"peft_type": "LORA", ...}],
///  "task_type": ..., "modules_to_save": ...}          the common keys of the whole union
/// ```
/// and in the adapters library's folders it is its own `{"architecture": "union", "configs": [...]}` (every part then
/// one of the methods that library shares with us).
///
/// Parts attach in order, each through its own hook, and must not touch the same place: the union is refused, with an
/// error naming both parts and the place, when two layer tuners (LoRA, DoRA, IA3, Poly / MHR, BEFT, SSF, sparse,
/// LN tuning, the adapters library's LoRA and (IA)^3) would wrap the same module, two bottleneck configs select the same residual slot (the library's rule
/// for bottleneck parts without `leave_out`: they must differ in `mh_adapter` and in `output_adapter`), two
/// Compacter parts would each own the model's shared rule, or two prompt-learning methods (prefix tuning, prompt
/// tuning, P-tuning) would both feed the model (they share PEFT's `prompt_embeddings` key). Parts carry no task type
/// or `modules_to_save` of their own: the union's common keys say what trains besides the adapters.
public struct ConfigUnion: PeftConfig {
    public static let peftType = "POLYPEFT_UNION"

    public var common = PeftCommonConfig()
    public var unknownKeys: [String: JSONValue] = [:]
    /// The parts, in attachment order.
    public var configs: [any PeftConfig] = []

    public init() {}

    public init(_ configs: [any PeftConfig]) { self.configs = configs }

    /// A union places adapters by its parts' own keys: no target fields of its own.
    public static var commonKeys: Set<String> { PeftCommonConfig.allKeys.subtracting(PeftCommonConfig.targetKeys) }

    public static var fields: [ConfigField<ConfigUnion>] {
        [
            ConfigField("configs", read: { r, c in
                guard let v = r.present("configs"), v != .null else { return }
                guard let parts = v.arrayValue else { throw r.fail("configs", "a list of adapter configs", v) }
                c.configs = try parts.enumerated().map { i, part in
                    try PeftMethods.config(json: part, context: "\(r.context) configs[\(i)]")
                }
            }, write: { c in .array(c.configs.map(\.json)) }),
        ]
    }

    public var summary: String { "Union  " + configs.map(\.summary).joined(separator: "  +  ") }

    /// The model-free rules (see the type's documentation); the rules that need the model are checked by `attach`.
    public func validate(context: String = "ConfigUnion") throws {
        guard !configs.isEmpty else { throw ConfigError("\(context): configs is empty (a union needs at least one method)") }
        for (i, c) in configs.enumerated() {
            let name = "\(context) configs[\(i)] (\(c.peftType))"
            guard !(c is ConfigUnion) else { throw ConfigError("\(name): a union cannot contain a union") }
            guard c.taskType == nil, c.modulesToSave == nil else {
                throw ConfigError("\(name): task_type and modules_to_save belong to the union, not to a part")
            }
            try c.validate(context: name)
        }
        let prompts = configs.indices.filter { type(of: configs[$0]).isPromptLearning }
        if prompts.count > 1 {
            throw ConfigError("\(context): configs[\(prompts[0])] and configs[\(prompts[1])] are both prompt-learning methods "
                + "(\(configs[prompts[0]].peftType), \(configs[prompts[1]].peftType)); a model takes one")
        }
        let tasks = configs.map(PeftModel.taskCount(of:))
        if let first = tasks.firstIndex(where: { $0 > 0 }), let other = tasks.firstIndex(where: { $0 > 0 && $0 != tasks[first] }) {
            throw ConfigError("\(context): configs[\(first)] routes by \(tasks[first]) tasks and configs[\(other)] by \(tasks[other]); "
                + "a union's task tables must have one number of tasks")
        }
        let rules = configs.indices.filter { (configs[$0] as? BnConfig).map { $0.phmLayer && $0.sharedPhmRule } ?? false }
        if rules.count > 1 {
            throw ConfigError("\(context): configs[\(rules[0])] and configs[\(rules[1])] are both Compacter parts with a shared "
                + "phm rule (shared_phm_rule); the model has one shared rule, so at most one part may use it")
        }
        for (i, a) in configs.enumerated() {
            guard let x = a as? BnConfig else { continue }
            for (j, b) in configs.enumerated() where j > i {
                guard let y = b as? BnConfig, x.leaveOut.isEmpty, y.leaveOut.isEmpty else { continue }
                if x.mhAdapter == y.mhAdapter || x.outputAdapter == y.outputAdapter {
                    throw ConfigError("\(context): configs[\(i)] and configs[\(j)] are bottleneck adapters that cannot be combined "
                        + "(without leave_out they must differ in mh_adapter and in output_adapter, as the adapters library requires)")
                }
            }
        }
    }

    public func resolved(for model: Module) throws -> ConfigUnion {
        var u = self
        u.configs = try configs.map { try $0.resolved(for: model) }
        return u
    }

    public func recording(_ attachment: PeftAttachment) -> ConfigUnion {
        var u = self
        u.configs = configs.map { $0.recording(attachment) }
        return u
    }

    /// Checks that no two parts touch the same module or slot, then attaches the parts in order. A part that fails
    /// after earlier parts attached leaves them in the model (the error says so): build the model again to retry.
    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        var owner: [String: Int] = [:]
        func claim(_ place: String, _ what: String, by i: Int) throws {
            if let j = owner[place] {
                throw ConfigError("configs[\(j)] (\(configs[j].peftType)) and configs[\(i)] (\(configs[i].peftType)) both \(what) '\(place)'")
            }
            owner[place] = i
        }
        for (i, c) in configs.enumerated() {
            if let tuner = c as? any LayerTunerConfig {
                for (path, _) in try tuner.targetedLayers(of: model, defaultTargets: defaultTargets) { try claim(path, "wrap", by: i) }
            } else if let lora = c as? AdaptersLoRAConfig {
                for t in try AdaptersLoRALinear.targets(of: model, selectedBy: lora) { try claim(t.path, "wrap", by: i) }
            } else if let prefix = c as? AdaptersPrefixConfig {
                for place in try AdaptersPrefixSlot.places(in: model, selectedBy: prefix).chosen {
                    try claim(place.path + "." + type(of: place.host).prefixSlotName, "fill the attention prefix slot", by: i)
                }
            } else if let bn = c as? BnConfig {
                for slot in try BottleneckAdapter.slots(of: model, selectedBy: bn) { try claim(slot.path + ".adapters", "fill the residual slot", by: i) }
            }
        }
        var all = PeftAttachment()
        for (i, c) in configs.enumerated() {
            let part: PeftAttachment
            do {
                part = try c.attach(to: model, defaultTargets: defaultTargets, using: &rng)
            } catch where i > 0 {
                throw ConfigError("configs[\(i)] (\(c.peftType)): \(error) (configs[0..<\(i)] are attached to the model already: "
                    + "build the model again before retrying)")
            }
            all.adapters += part.adapters
            all.trainedBaseParameters += part.trainedBaseParameters
        }
        return all
    }
}
