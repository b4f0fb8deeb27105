import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Applying `RoutingOptions` to every Poly layer of a model, and router sharing by `RouterGranularity`.
///
/// Shared routers are one `PolyRouter` (one `module_logits` `Parameter`) used by several layers: PEFT's files still
/// hold one `module_logits` per layer (the same values under each key), so PEFT loads them as independent routers
/// that start equal. Gradients of a shared router sum over its layers; `parameterSummary()` counts it once.
extension PeftModel {
    /// Poly layers, by path.
    public var polyLayers: [(path: String, layer: PolyLinear)] {
        adapters.compactMap { a in (a.layer as? PolyLinear).map { (a.path, $0) } }
    }

    /// Evaluation-mode routing readout: for each Poly layer, the mixing weights `[n_tasks, S, K]`.
    public func routing() throws -> [(path: String, weights: Tensor)] {
        try polyLayers.map { ($0.path, try $0.layer.routingWeights()) }
    }

    /// The options of the Poly layers (PEFT's defaults when the model has none).
    public var routingOptions: RoutingOptions { polyLayers.first?.layer.router.options ?? RoutingOptions() }

    /// Sets routing options on every Poly layer, re-groups routers when `granularity` changes (routers merged into
    /// one keep the first layer's logits; routers split apart start as copies), and records them in the config.
    public func setRoutingOptions(_ options: RoutingOptions) throws {
        guard var poly = config as? PolyConfig else { throw PolyError("routing options apply to Poly adapters only") }
        try options.validate()
        if let m = mergedTask { throw PolyError("routing options: task \(m) is merged into the base weights; unmerge first") }
        try applyRoutingOptions(options)
        poly.routing = options
        config = poly
    }

    /// Sets the relaxed-Bernoulli training temperature of every router (e.g. each step from a `TemperatureSchedule`).
    public func setRoutingTemperature(_ temperature: Float) throws {
        var o = routingOptions
        o.temperature = temperature
        try setRoutingOptions(o)
    }

    /// Shares routers by `options.granularity` and sets `options` on each.
    func applyRoutingOptions(_ options: RoutingOptions) throws {
        try PolyLinear.shareRouters(of: polyLayers.map(\.layer), options: options)
    }
}

extension PolyLinear {
    /// Shares routers among `layers` by `options.granularity` (routers merged into one keep the first layer's logits;
    /// routers split apart start as copies) and sets `options` on each.
    static func shareRouters(of layers: [PolyLinear], options: RoutingOptions) throws {
        var groups: [String: [PolyLinear]] = [:], order: [String] = []
        for layer in layers {
            let key = options.granularity.key(for: layer.path)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(layer)
        }
        var used = Set<ObjectIdentifier>()
        for key in order {
            let members = groups[key]!
            var router = members[0].router
            if !used.insert(ObjectIdentifier(router)).inserted { router = try router.copy() }
            for layer in members.dropFirst() where layer.nSkills != router.nSkills || layer.nSplits != router.nSplits {
                throw PolyError("router sharing: layer \(layer.path) has \(layer.nSplits) splits x \(layer.nSkills) skills, "
                    + "the router it would share has \(router.nSplits) x \(router.nSkills)")
            }
            router.options = options
            for layer in members where layer.router !== router { try layer.use(router: router) }
        }
    }

    /// Makes `router` this layer's router (a child named `poly_router`, as PEFT names it).
    func use(router newRouter: PolyRouter) throws {
        precondition(newRouter.nSkills == nSkills && newRouter.nSplits == nSplits, "router shape differs from the layer's")
        try replace(path: "poly_router", with: newRouter)
        router = newRouter
    }
}

extension PolyRouter {
    /// An independent router with the same logits (and pending rows) and options.
    func copy() throws -> PolyRouter {
        var none = Xoshiro256(seed: 0)
        let c = PolyRouter(nTasks: 0, nSkills: nSkills, nSplits: nSplits, using: &none)
        c.moduleLogits.value = moduleLogits.value
        c.moduleLogits.requiresGrad = moduleLogits.requiresGrad
        if let n = newLogits { c.newLogits = Parameter(n.value, requiresGrad: n.requiresGrad) }
        c.options = options
        return c
    }
}
