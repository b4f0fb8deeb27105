import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's per-model-type default targets (`peft.utils.constants`), for configs that name no `target_modules`.
public enum DefaultTargets {
    /// `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING` (LoRA, Poly and the LoRA family).
    public static let lora: [String: [String]] = [
        "bert": ["query", "value"], "t5": ["q", "v"], "mt5": ["q", "v"],
    ]
    /// `TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING`.
    public static let ia3: [String: [String]] = [
        "bert": ["key", "value", "output.dense"], "t5": ["k", "v", "wo"],
    ]
    /// `TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING`.
    public static let ia3Feedforward: [String: [String]] = [
        "bert": ["output.dense"], "t5": ["wo"],
    ]

    /// `TRANSFORMERS_MODELS_TO_BEFT_TARGET_MODULES_MAPPING`.
    public static let beft: [String: [String]] = [
        "bert": ["value"], "t5": ["v"], "mt5": ["v"],
    ]
    /// `TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING` (BERT has none: its norms must be named).
    public static let lnTuning: [String: [String]] = [
        "t5": ["layer_norm", "final_layer_norm"], "mt5": ["layer_norm", "final_layer_norm"],
    ]

    /// PolyPEFT's SSF defaults (PEFT has no SSF): after every linear layer and norm of a block, as the SSF paper
    /// places its scale and shift (BERT's `dense` matches the attention output, intermediate and output layers).
    public static let ssf: [String: [String]] = [
        "bert": ["query", "key", "value", "dense", "LayerNorm"],
        "t5": ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo", "layer_norm", "final_layer_norm"],
        "mt5": ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo", "layer_norm", "final_layer_norm"],
    ]

    /// The model type of `model`, when it names one.
    static func modelType(of model: Module) -> String? { (model as? any PretrainedModel)?.modelType }
}
