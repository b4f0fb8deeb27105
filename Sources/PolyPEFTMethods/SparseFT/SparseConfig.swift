import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Unstructured sparse fine-tuning (FishMask, Sung et al. 2021; diff pruning's fixed-mask form) in PolyPEFT's
/// namespace (`peft_type` `"POLYPEFT_SPARSE"`: PEFT has none). A fixed set of entries of the targeted `Linear`
/// weights trains; everything else stays the base. Keys:
///
/// ```
/// density 0.01            the fraction of the targeted weights that trains (a global budget)
/// budget null             the number of entries instead (overrides density)
/// selection "magnitude"   how entries are chosen: "magnitude" (largest |w|) or "fisher" (largest empirical Fisher
///                         information, sum over a few batches of the squared gradient, `PeftModel.selectSparseMask`)
/// budget_pattern {}       entries per layer path, written once a mask is chosen (so a saved adapter reloads its
///                         exact layout)
/// (+ the common keys: target_modules, exclude_modules, modules_to_save, ... ; `PeftCommonConfig`)
/// ```
/// The choice is global: the budget goes to the highest-scoring entries of all targeted weights together. Saved per
/// layer as `sparse_indices` `[2, k]` (row and column of each entry, as torch's COO `indices()`; stored as floats,
/// exact for dimensions below 2^24) and `sparse_values` `[k]` (`SparseLinear`). Merging adds the values into the
/// weight; unmerging restores the original entries exactly.
public struct SparseConfig: LayerTunerConfig, Equatable, Codable {
    public static let peftType = "POLYPEFT_SPARSE"

    /// How the trained entries are chosen.
    public enum Selection: String, CaseIterable, Sendable, Codable {
        case magnitude, fisher
    }

    public var common = PeftCommonConfig()
    public var density = 0.01
    public var budget: Int?
    public var selection = Selection.magnitude
    public var budgetPattern: [String: Int] = [:]
    public var unknownKeys: [String: JSONValue] = [:]

    public static var fields: [ConfigField<SparseConfig>] {
        [
            .double("density", \.density),
            .optionalInt("budget", \.budget),
            .choice("selection", \.selection),
            ConfigField("budget_pattern", read: { r, c in
                guard r.present("budget_pattern") != .null else { return }
                c.budgetPattern = try r.numberMap("budget_pattern").mapValues { v in
                    guard v == v.rounded(), Swift.abs(v) < 1e15 else {
                        throw ConfigError("\(r.context): budget_pattern values must be integers, got \(v)")
                    }
                    return Int(v)
                }
            }, write: { c in .object(c.budgetPattern.mapValues { .int($0) }) }),
        ]
    }

    public init() {}

    public init(targetModules: TargetModules? = nil, density: Double = 0.01, budget: Int? = nil, selection: Selection = .magnitude) {
        common.targetModules = targetModules
        self.density = density
        self.budget = budget
        self.selection = selection
    }

    public func validate(context: String = "SparseConfig") throws {
        guard density.isFinite, density > 0, density <= 1 else {
            throw ConfigError("\(context): density must be in (0, 1], got \(density)")
        }
        if let b = budget, b < 1 { throw ConfigError("\(context): budget must be at least 1, got \(b)") }
        if let (path, k) = budgetPattern.sorted(by: { $0.key < $1.key }).first(where: { $0.value < 0 }) {
            throw ConfigError("\(context): budget_pattern['\(path)'] must be at least 0, got \(k)")
        }
    }

    /// The number of entries that train among `total` targeted weights.
    public func entries(of total: Int) -> Int {
        Swift.min(total, budget ?? Swift.max(1, Int((density * Double(total)).rounded())))
    }

    public func makeAdapter(wrapping layer: any Layer, path: String, in model: Module, using rng: inout some RandomNumberGenerator) throws -> any AdapterLayer {
        SparseLinear(wrapping: try requireLinear(layer, path: path, method: "sparse fine-tuning"), path: path)
    }

    /// Wraps every target, then gives each its entries: `budget_pattern`'s counts where given (a saved adapter: the
    /// loaded indices replace the placeholders), else the global choice by magnitude (a Fisher config starts there too;
    /// `PeftModel.selectSparseMask(fisher:)` chooses again from data).
    public func attach(to model: Module, defaultTargets: TargetModules?, using rng: inout some RandomNumberGenerator) throws -> PeftAttachment {
        let attachment = try attachLayers(to: model, defaultTargets: defaultTargets, using: &rng)
        let layers = attachment.adapters.compactMap { $0.adapter as? SparseLinear }
        if budgetPattern.isEmpty {
            try SparseSelection.assign(scores: layers.map { $0.linear.weight.value.abs() }, to: layers, count: entries(of: layers.reduce(0) { $0 + $1.linear.weight.count }))
        } else {
            for l in layers {
                guard let k = budgetPattern[l.path] else {
                    throw ConfigError("budget_pattern has no count for the targeted layer '\(l.path)'")
                }
                guard k <= l.linear.weight.count else {
                    throw ConfigError("budget_pattern gives '\(l.path)' \(k) entries; its weight has \(l.linear.weight.count)")
                }
                try SparseSelection.assign(scores: [l.linear.weight.value.abs()], to: [l], count: k)
            }
            if let stray = Set(budgetPattern.keys).subtracting(layers.map(\.path)).sorted().first {
                throw ConfigError("budget_pattern names '\(stray)', which is not a targeted layer")
            }
        }
        return attachment
    }

    /// The entries each layer got, as `budget_pattern`.
    public func recording(_ attachment: PeftAttachment) -> SparseConfig {
        var c = self
        c.budgetPattern = Self.budgetPattern(of: attachment.adapters.compactMap { $0.adapter as? SparseLinear })
        return c
    }

    /// Each layer's number of entries, by path.
    static func budgetPattern(of layers: [SparseLinear]) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: layers.map { ($0.path, $0.entries.count) })
    }

    public var summary: String {
        let size = budget.map { "budget=\(groupThousands($0))" } ?? "density=\(formatFixed(density, digits: 4))"
        return "Sparse  targets=\(targetModules?.summary ?? "(model default)")  \(size)  selection=\(selection.rawValue)"
    }

    public init(from decoder: any Decoder) throws { try self.init(json: try JSONValue(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
