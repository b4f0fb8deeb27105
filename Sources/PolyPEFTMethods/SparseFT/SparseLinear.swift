import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Sparse fine-tuning around a `Linear`: a few entries of its weight train.
///
/// ```
/// entries: k flat positions of W [out, in] (sorted);  sparse_values: [k]
/// y = x (W + scatter(sparse_values at entries))^T + bias          dvalues = (g^T x).flat[entries]
/// merged:  W.flat[entries] += values   (the original entries are kept: unmerging restores them exactly)
/// ```
/// Saved as `sparse_indices` `[2, k]` (rows, then columns; floats, exact below 2^24) and `sparse_values` `[k]`.
/// The values start at 0: the layer starts as its base.
public final class SparseLinear: Module, AdapterLayer, FeatureLayer {
    /// The saved tensor of entry positions (not parameters: `polyctl inspect` leaves it out of the count).
    public static let indicesName = "sparse_indices"
    public let base: any Layer
    public let linear: Linear
    public let path: String
    public var inFeatures: Int { linear.inFeatures }
    public var outFeatures: Int { linear.outFeatures }
    /// The trained positions, flat (row-major) and sorted.
    public private(set) var entries: [Int] = []
    /// The trained values, one per entry.
    public private(set) var values = Parameter(Tensor.zeros([0]))
    /// The base's own values at `entries` while merged.
    private var originals: Tensor?

    public var mergedUpdate: String? { originals == nil ? nil : "the sparse update" }

    public init(wrapping linear: Linear, path: String) {
        base = linear
        self.linear = linear
        self.path = path
        super.init()
        addChild("base_layer", linear)
    }

    /// Sets the trained positions (sorted, distinct, in range); the values restart at 0.
    public func setEntries(_ flat: [Int]) throws {
        guard originals == nil else { throw ConfigError("\(path): unmerge before choosing new sparse entries") }
        let sorted = flat.sorted(), n = linear.weight.count
        if let bad = sorted.first(where: { $0 < 0 || $0 >= n }) {
            throw ConfigError("\(path): sparse entry \(bad) is outside the weight's \(n) elements")
        }
        for i in sorted.indices.dropFirst() where sorted[i] == sorted[i - 1] {
            throw ConfigError("\(path): sparse entry \(sorted[i]) is listed twice")
        }
        entries = sorted
        values.value = Tensor.zeros([sorted.count])
    }

    public func adapterParameters() -> [(name: String, parameter: Parameter)] { [("sparse_values", values)] }

    public func savedTensors() throws -> [(name: String, tensor: Tensor)] {
        let cols = linear.inFeatures
        let rows = entries.map { Float($0 / cols) }, columns = entries.map { Float($0 % cols) }
        return [(Self.indicesName, Tensor(rows + columns, shape: [2, entries.count])), ("sparse_values", values.value)]
    }

    /// Takes `sparse_indices` and `sparse_values` back (shapes already checked); indices must be whole, in range and
    /// distinct.
    public func loadSavedTensors(_ tensors: [String: Tensor]) throws {
        guard let idx = tensors[Self.indicesName], let v = tensors["sparse_values"] else { return }
        let k = idx.shape[1], flat = idx.contiguous().scalars
        var positions: [Int] = []
        positions.reserveCapacity(k)
        for i in 0..<k {
            let r = flat[i], c = flat[k + i]
            guard r == r.rounded(), c == c.rounded(), r >= 0, c >= 0, r < Float(linear.outFeatures), c < Float(linear.inFeatures) else {
                throw ConfigError("\(path).sparse_indices: entry \(i) is (\(r), \(c)), not a position of a [\(linear.outFeatures), \(linear.inFeatures)] weight")
            }
            positions.append(Int(r) * linear.inFeatures + Int(c))
        }
        guard positions == positions.sorted() else { throw ConfigError("\(path).sparse_indices: entries are not in row-major order") }
        try setEntries(positions)
        values.value = v.contiguous()
    }

    public func update(_ x: Variable, _ ctx: Context) throws -> AdapterUpdate {
        .dense(try forward(x, ctx) - (try base.forward(x, ctx)))
    }

    public func updateIsInBase(for x: Variable, _ ctx: Context) -> Bool { originals != nil }

    public func forward(_ x: Variable, _ ctx: Context) throws -> Variable {
        if !ctx.adaptersEnabled, let m = mergedUpdate {
            throw ConfigError("\(path): \(m) is merged into the base weight; unmerge() before running with adapters disabled")
        }
        guard ctx.adaptersEnabled, originals == nil, !entries.isEmpty else { return try base.forward(x, ctx) }
        let w = try ctx[linear.weight].addingSparse(ctx[values], at: entries)      // [out, in]
        let y = try x.linear(weight: w, bias: linear.bias.map { ctx[$0] })
        if let r = ctx.recorder {
            r.record("layer.\(path).input", x.value)
            r.record("layer.\(path).output", y.value)
        }
        return y
    }

    public func merge() throws {
        guard originals == nil, !entries.isEmpty else { return }
        let w = linear.weight.value
        originals = try w.flatGather(entries)
        linear.weight.value = try w.addingSparse(values.value, at: entries)
    }

    public func unmerge() throws {
        guard let kept = originals else { return }
        var w = linear.weight.value.scalars
        let k = kept.scalars
        for (i, at) in entries.enumerated() { w[at] = k[i] }
        linear.weight.value = Tensor(w, shape: linear.weight.value.shape)
        originals = nil
    }
}

/// Choosing the entries that train: the top `count` scores over several weights together.
public enum SparseSelection {
    /// Gives `layers` the `count` entries with the largest `scores` (one tensor per layer, its weight's shape) among
    /// all of them.
    public static func assign(scores: [Tensor], to layers: [SparseLinear], count: Int) throws {
        var all: [(score: Float, layer: Int, at: Int)] = []
        for (l, t) in scores.enumerated() {
            for (i, v) in t.contiguous().scalars.enumerated() {
                guard v.isFinite else { throw ConfigError("sparse selection: \(layers[l].path) score \(i) is not finite") }
                all.append((v, l, i))
            }
        }
        all.sort { $0.score != $1.score ? $0.score > $1.score : ($0.layer, $0.at) < ($1.layer, $1.at) }
        var chosen = [[Int]](repeating: [], count: layers.count)
        for e in all.prefix(count) { chosen[e.layer].append(e.at) }
        for (l, layer) in layers.enumerated() { try layer.setEntries(chosen[l]) }
    }
}
