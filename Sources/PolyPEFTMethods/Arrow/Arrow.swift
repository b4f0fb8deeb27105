import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Arrow on a model: every module the library's adapters adapt becomes an `ArrowLinear` over them (PEFT's
/// `create_arrow_model`, which names the experts `task_0`, ... in the order given and the general adapters
/// `gks_0`, ...).
public enum Arrow {
    /// Routes `experts` (the library's adapters, in order; all but `general` when nil) in `model`, whose base weights
    /// are loaded. With `use_gks`, the mean `A` and the mean `B` of `general` are subtracted from every expert's (per
    /// module, as PEFT does: the factors apart, not their product; the ranks must agree). Returns the layers, by path.
    @discardableResult
    public static func attach(to model: Module, library: AdapterLibrary, experts: [String]? = nil, general: [String] = [],
                              config: ArrowConfig) throws -> [ArrowLinear] {
        try config.validate()
        let names = experts ?? library.names.filter { !general.contains($0) }
        guard !names.isEmpty else { throw ConfigError("Arrow needs at least one expert adapter") }
        if let both = names.first(where: general.contains) { throw ConfigError("'\(both)' is both an expert and a general adapter") }
        guard config.useGKS == !general.isEmpty else {
            throw ConfigError(config.useGKS ? "use_gks needs general adapters" : "general adapters are used with use_gks only")
        }
        let expertFactors = try names.map { try library.factors($0) }
        let generalFactors = try general.map { try library.factors($0) }
        let entries = try names.map { try library.entry($0) }
        var layers: [ArrowLinear] = []
        for path in library.modulePaths {
            var factors = expertFactors.map { $0[path]! }
            if !generalFactors.isEmpty {
                let g = generalFactors.map { $0[path]! }
                guard Set((g + factors).map { $0.a.shape[0] }).count == 1 else {
                    throw ConfigError("\(path): GenKnowSub subtracts the general adapters' mean factors, so every rank must agree")
                }
                let meanA = try g.dropFirst().reduce(g[0].a) { try $0 + $1.a } / Float(g.count)
                let meanB = try g.dropFirst().reduce(g[0].b) { try $0 + $1.b } / Float(g.count)
                factors = try factors.map { (try $0.a - meanA, try $0.b - meanB) }
            }
            guard let layer = model.module(at: path) as? any Layer else {
                throw ConfigError("\(path): the library adapts a module the model does not have")
            }
            let arrow = try ArrowLinear(wrapping: layer, path: path, experts: names, factors: factors,
                                        scalings: try entries.map { try $0.scaling(at: path) }, config: config)
            try model.replace(path: path, with: arrow)
            layers.append(arrow)
        }
        return layers
    }
}
