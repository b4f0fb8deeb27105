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
