import PolyPEFTCore
import PolyPEFTIO

/// The adapters library's named unions. Both are plain `ConfigUnion`s (the library saves them as
/// `{"architecture": "union", ...}` too), with the library's defaults:
///
/// ```
/// MAMConfig      prefix tuning (bottleneck_size 800)  +  ParBnConfig() (parallel, factor 2, scaling 4)
/// UniPELTConfig  prefix tuning (prefix_length 10)  +  SeqBnConfig(reduction_factor=16)  +  LoRAConfig(r=8, alpha=2),
///                every part with use_gating = true
/// ```
extension ConfigUnion {
    /// `MAMConfig(prefix_tuning, adapter)`: Mix-and-Match adapters (He et al. 2021).
    public static func mam(prefixTuning: AdaptersPrefixConfig? = nil, adapter: BnConfig? = nil) -> ConfigUnion {
        ConfigUnion([prefixTuning ?? AdaptersPrefixConfig(prefixLength: 30, bottleneckSize: 800), adapter ?? BnConfig.parBn()])
    }

    /// `UniPELTConfig(prefix_tuning, adapter, lora)` (Mao et al. 2022): the three parts, each gated (a part given
    /// here is gated too, as the library's `replace(use_gating=True)` does).
    public static func uniPELT(prefixTuning: AdaptersPrefixConfig? = nil, adapter: BnConfig? = nil,
                               lora: AdaptersLoRAConfig? = nil) -> ConfigUnion {
        var p = prefixTuning ?? AdaptersPrefixConfig(prefixLength: 10)
        var a = adapter ?? BnConfig.seqBn(reductionFactor: 16)
        var l = lora ?? AdaptersLoRAConfig.lora(r: 8, alpha: 2)
        p.useGating = true
        a.useGating = true
        l.useGating = true
        return ConfigUnion([p, a, l])
    }
}

extension ConfigUnion {
    /// A task-routed union (PolyPEFT's; no peer has it): every part gated, each gate a table of task logits instead of
    /// a function of the input (`MethodGate`, `polypeft_task_gates`), so that a multitask model learns which method
    /// each task uses, per layer and location. Parts that cannot be gated (not a bottleneck adapter, the adapters
    /// library's LoRA / (IA)^3 or prefix tuning) are an error naming them.
    public static func taskRouted(_ parts: [any PeftConfig], tasks: Int) throws -> ConfigUnion {
        ConfigUnion(try parts.enumerated().map { i, part in
            guard var g = part as? any GateableConfig else {
                throw ConfigError("configs[\(i)] (\(part.peftType)) has no gate to route by task (gated methods: "
                    + "\(BnConfig.peftType), \(AdaptersLoRAConfig.peftType), \(AdaptersPrefixConfig.peftType))")
            }
            g.useGating = true
            g.taskGates = tasks
            return g
        })
    }

    /// Tasks of the parts' task-routed gates, when every gated part has them.
    public var taskGates: Int? {
        let gated = configs.compactMap { $0 as? any GateableConfig }.filter(\.useGating)
        guard let n = gated.first?.taskGates, gated.allSatisfy({ $0.taskGates == n }) else { return nil }
        return n
    }
}
