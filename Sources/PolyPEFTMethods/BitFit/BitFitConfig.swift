import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// BitFit (Ben Zaken et al., 2022): train the base model's bias terms and nothing else. PEFT has no such method, so
/// the config lives in PolyPEFT's namespace (`peft_type` `"POLYPEFT_BITFIT"`, only the common keys):
///
/// ```
/// target_modules null: every bias of the model (linear layers and norms)      | a list or regex: the biases of the
/// exclude_modules: modules whose biases stay frozen                              modules it matches
/// ```
/// The trained biases are saved as PEFT saves trainable biases (LoRA's `bias = "all"`): under the base keys
/// `base_model.model.<path>.bias`, so the file reads like a PEFT adapter's bias part. Nothing wraps a layer and
/// nothing needs merging: the biases are the base's own. As with PEFT's trained biases, disabling adapters keeps them.
public struct BitFitConfig: PeftConfig, Equatable, Codable {
    public static let peftType = "POLYPEFT_BITFIT"

    public var common = PeftCommonConfig()
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<BitFitConfig>] { [] }

    public init() {}

    public init(targetModules: TargetModules? = nil) { common.targetModules = targetModules }

    public func validate(context: String = "BitFitConfig") throws {}

    /// The biases chosen (see the type's documentation), in module order, under their saved keys; modules of
    /// `modules_to_save` are left to that list (trained and saved whole).
    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let saveList = modulesToSave ?? []
        var chosen: [(key: String, parameter: Parameter)] = []
        for (name, p) in model.namedParameters() where name == "bias" || name.hasSuffix(".bias") {
            let path = name == "bias" ? "" : String(name.dropLast(".bias".count))
            let parts = path.split(separator: ".")
            let enclosing = parts.indices.map { parts[...$0].joined(separator: ".") }          // "a", "a.b", ... path
            if enclosing.contains(where: { m in saveList.contains { TargetModules.name(m, matches: $0) } }) { continue }
            if let t = targetModules, try !t.matches(path) { continue }
            if let ex = excludeModules, try ex.matches(path) { continue }
            chosen.append((PeftModel.keyPrefix + name, p))
        }
        guard !chosen.isEmpty else {
            throw ConfigError(targetModules == nil ? "BitFit: the model has no bias parameters to train"
                              : "BitFit: target modules \(targetModules!.summary) matched no module with a bias")
        }
        return PeftAttachment(trainedBaseParameters: chosen)
    }

    public var summary: String { "BitFit  biases of \(targetModules?.summary ?? "every module")" }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
