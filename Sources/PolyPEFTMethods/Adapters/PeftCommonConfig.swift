import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The fields every PEFT config has, written once (PEFT's `PeftConfigMixin` and the target fields its tuners share):
///
/// ```
/// task_type null, target_modules null, exclude_modules null, modules_to_save null, inference_mode false,
/// base_model_name_or_path null, revision null, auto_mapping null, peft_version null        (peft_type: per method)
/// ```
/// A method whose PEFT config has no target fields (prompt learning) leaves them out (`PeftConfig.commonKeys`).
public struct PeftCommonConfig: Equatable, Sendable {
    public var taskType: String?
    public var targetModules: TargetModules?
    public var excludeModules: TargetModules?
    public var modulesToSave: [String]?
    public var inferenceMode = false
    public var baseModelNameOrPath: String?
    public var revision: String?
    public var autoMapping: JSONValue?
    public var peftVersion: String?

    public init() {}

    /// The table of the common keys (`peft_type` is handled by `PeftConfig` itself).
    static var fields: [ConfigField<PeftCommonConfig>] {
        [
            .optionalString("task_type", \.taskType),
            .targets("target_modules", \.targetModules),
            .targets("exclude_modules", \.excludeModules),
            .strings("modules_to_save", \.modulesToSave),
            .bool("inference_mode", \.inferenceMode),
            .optionalString("base_model_name_or_path", \.baseModelNameOrPath),
            .optionalString("revision", \.revision),
            .raw("auto_mapping", \.autoMapping),
            .optionalString("peft_version", \.peftVersion),
        ]
    }

    /// Every common key.
    public static let allKeys: Set<String> = Set(fields.map(\.key))
    /// The keys of the target fields, which prompt-learning configs do not have.
    public static let targetKeys: Set<String> = ["target_modules", "exclude_modules"]

    /// The heads PEFT's task wrapper adds to `modules_to_save` (trained and saved with the adapter, whatever the
    /// method): `classifier` and `score` for `SEQ_CLS` and `TOKEN_CLS` (`PeftModelForSequenceClassification`,
    /// `PeftModelForTokenClassification`), `qa_outputs` for `QUESTION_ANS`; none for other task types. A head that
    /// matches no module of the model is skipped, as in PEFT (BERT has a `classifier`, no `score`).
    public static func taskHeads(for taskType: String?) -> [String] {
        switch taskType {
        case "SEQ_CLS", "TOKEN_CLS": return ["classifier", "score"]
        case "QUESTION_ANS": return ["qa_outputs"]
        default: return []
        }
    }
}
