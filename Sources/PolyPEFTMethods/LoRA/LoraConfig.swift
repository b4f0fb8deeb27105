import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// PEFT's `LoraConfig`, the parts PolyPEFT implements, with PEFT's JSON names and defaults:
///
/// ```
/// r 8, lora_alpha 8, lora_dropout 0.0, use_rslora false, init_lora_weights true (or false, or "gaussian"),
/// bias "none" ("all", "lora_only"), use_dora false, lora_bias false, rank_pattern {}, alpha_pattern {},
/// peft_type "LORA"                                    (+ the common keys, `PeftCommonConfig`)
/// ```
/// `rank_pattern` / `alpha_pattern` map a pattern to a rank / alpha for the layers it matches: the pattern `p`
/// matches a layer path when the regex `(^|.*\.)p$` matches the whole path; the first matching pattern in sorted
/// order wins (PEFT writes the keys sorted and takes the first match in that order).
///
/// PEFT writes many more keys. Those whose default value changes nothing are accepted (`fixedKeys`); any other value
/// of them is an error, never silently ignored. Other unknown keys are kept and reported.
public struct LoraConfig: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "LORA"

    public var common = PeftCommonConfig()
    public var r = 8
    public var loraAlpha: Double = 8
    public var loraDropout: Double = 0
    public var useRslora = false
    public var initLoraWeights: LoRALinear.Initialization = .kaiming
    /// Which biases train and are saved: `"none"`, `"all"` (every bias of the model), `"lora_only"` (the biases of
    /// the adapted layers).
    public var bias = "none"
    /// DoRA: a learned magnitude per output row (`lora_magnitude_vector`).
    public var useDora = false
    /// A trainable bias on `lora_B`.
    public var loraBias = false
    public var rankPattern: [String: Int] = [:]
    public var alphaPattern: [String: Double] = [:]
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<LoraConfig>] {
        [
            .int("r", \.r),
            .number("lora_alpha", \.loraAlpha),
            .double("lora_dropout", \.loraDropout),
            .bool("use_rslora", \.useRslora),
            ConfigField("init_lora_weights", read: { r, c in
                switch r.present("init_lora_weights") {
                case nil, .bool(true)?: c.initLoraWeights = .kaiming
                case .bool(false)?: c.initLoraWeights = .random
                case .string("gaussian")?: c.initLoraWeights = .gaussian
                case let v?: throw ConfigError("\(r.context): init_lora_weights \(v.compactString()) is not supported (use true, false or \"gaussian\")")
                }
            }, write: { c in
                switch c.initLoraWeights {
                case .kaiming: return true
                case .random: return false
                case .gaussian: return "gaussian"
                }
            }),
            .string("bias", \.bias),
            .bool("use_dora", \.useDora),
            .bool("lora_bias", \.loraBias),
            ConfigField("rank_pattern", read: { r, c in
                c.rankPattern = try r.numberMap("rank_pattern").mapValues { v in
                    guard v == v.rounded(), Swift.abs(v) < 1e9 else { throw ConfigError("\(r.context): rank_pattern values must be integers, got \(v)") }
                    return Int(v)
                }
            }, write: { .object($0.rankPattern.mapValues { .int($0) }) }),
            ConfigField("alpha_pattern", read: { r, c in c.alphaPattern = try r.numberMap("alpha_pattern") },
                        write: { .object($0.alphaPattern.mapValues { JSONValue.number($0) }) }),
        ]
    }

    /// Keys PEFT writes whose value must be the given default here (anything else is unsupported).
    public static var fixedKeys: [String: [JSONValue]] {
        ["fan_in_fan_out": [false], "layers_to_transform": [nil], "layers_pattern": [nil, []], "layer_replication": [nil],
         "target_parameters": [nil, []], "trainable_token_indices": [nil], "use_qalora": [false], "megatron_config": [nil],
         "loftq_config": [[:]], "eva_config": [nil], "corda_config": [nil], "arrow_config": [nil], "alora_invocation_tokens": [nil],
         "ensure_weight_tying": [false], "kasa_config": [nil], "lora_ga_config": [nil], "monteclora_config": [nil],
         "use_bdlora": [nil, false], "velora_config": [nil]]
    }

    /// `qalora_group_size` (used only with `use_qalora`) and `megatron_core` (only with `megatron_config`).
    public static var inertKeys: [String: JSONValue] { ["qalora_group_size": 16, "megatron_core": "megatron.core"] }

    public init() {}

    public init(r: Int = 8, loraAlpha: Double = 8, targetModules: TargetModules? = nil) {
        self.r = r
        self.loraAlpha = loraAlpha
        common.targetModules = targetModules
    }

    public func validate(context: String = "LoraConfig") throws {
        guard r > 0 else { throw ConfigError("\(context): r must be a positive integer, got \(r)") }
        // A rank that could only be an accident is refused before the factors are allocated from it.
        if let (k, v) = ([("r", r)] + rankPattern.sorted { $0.key < $1.key }.map { ("rank_pattern['\($0.key)']", $0.value) })
            .first(where: { $0.1 > 1 << 16 }) {
            throw ConfigError("\(context): \(k) = \(v) exceeds \(1 << 16)")
        }
        guard ["none", "all", "lora_only"].contains(bias) else {
            throw ConfigError("\(context): bias \"\(bias)\" is not supported (use \"none\", \"all\" or \"lora_only\")")
        }
        guard loraDropout >= 0 && loraDropout < 1 else { throw ConfigError("\(context): lora_dropout must be in [0, 1), got \(loraDropout)") }
        if let (k, v) = rankPattern.first(where: { $0.value <= 0 }) {
            throw ConfigError("\(context): rank_pattern['\(k)'] must be a positive integer, got \(v)")
        }
        if useDora && loraBias { throw ConfigError("\(context): use_dora with lora_bias is not supported by PolyPEFT") }
    }

    /// The rank and alpha of the layer at `path` (`rank_pattern` / `alpha_pattern`, else `r` / `lora_alpha`).
    public func rankAndAlpha(for path: String) throws -> (r: Int, alpha: Double) {
        (try LoraConfig.patternValue(rankPattern, path) ?? r, try LoraConfig.patternValue(alphaPattern, path) ?? loraAlpha)
    }

    /// The value of the first pattern, in sorted order, that matches `path` as PEFT matches them.
    static func patternValue<V>(_ patterns: [String: V], _ path: String) throws -> V? {
        for key in patterns.keys.sorted() {
            let re = try TargetModules.compile("(^|.*\\.)" + key + "$", what: "pattern '\(key)'")
            if (try? re.wholeMatch(in: path)) != nil { return patterns[key] }
        }
        return nil
    }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        let (rank, alpha) = try rankAndAlpha(for: path)
        return try LoRALinear(wrapping: try requireLinear(layer, path: path, method: "LoRA"), path: path, r: rank, alpha: Float(alpha),
                              dropout: Float(loraDropout), useRslora: useRslora, useDora: useDora, loraBias: loraBias,
                              initialization: initLoraWeights, using: &rng)
    }

    /// `bias = "all"`: every bias of the model (PEFT: every parameter whose name contains `bias`) outside the
    /// adapters; `"lora_only"`: the biases of the adapted layers.
    public func trainedBaseParameters(of model: Module, adapters: [(path: String, adapter: any Adapter)])
        -> [(key: String, parameter: Parameter)] {
        switch bias {
        case "all":
            return model.namedParameters().filter { $0.name.contains("bias") && !$0.name.contains("lora_") }
                .map { (PeftModel.keyPrefix + $0.name, $0.parameter) }
        case "lora_only":
            return adapters.compactMap { path, a in
                guard let b = (a as? LoRALinear)?.baseLayer.bias else { return nil }
                return (PeftModel.keyPrefix + path + ".base_layer.bias", b)
            }
        default:
            return []
        }
    }

    public var summary: String {
        "\(useDora ? "DoRA" : "LoRA")  r=\(r)  lora_alpha=\(formatFixed(loraAlpha, digits: 2))  dropout=\(formatFixed(loraDropout, digits: 2))"
            + (bias == "none" ? "" : "  bias=\(bias)") + (loraBias ? "  lora_bias" : "")
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension JSONObjectReader {
    /// An object of numbers (`rank_pattern`), or an empty map when absent.
    func numberMap(_ key: String) throws -> [String: Double] {
        guard let v = present(key) else { return [:] }
        guard let o = v.objectValue else { throw fail(key, "an object of numbers", v) }
        return try o.mapValues { x in
            guard let d = x.doubleValue else { throw fail(key, "an object of numbers", v) }
            return d
        }
    }
}
