import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// The gate values of one forward, as the adapters library returns them with `output_adapter_gating_scores=True`
/// (for one adapter): by layer, then location, an array per sample. Gated methods record them in the forward's
/// `Recorder` under `gate.<layer>.<location>`: bottleneck adapters at `mh_adapter`, `output_adapter`,
/// `cross_adapter` (`[B]`), the adapters library's LoRA and (IA)^3 at `selfattn_lora`, `intermediate_lora`,
/// `output_lora` (`[B]` per wrapped module, stacked as columns `[B, modules]` in call order). Layers are numbered as
/// the library numbers them (a decoder's after its encoder's).
public struct GatingScores: Equatable {
    /// `scores[layer][location]`: `[B]` or `[B, modules]`.
    public var scores: [Int: [String: Tensor]]

    public init(scores: [Int: [String: Tensor]]) { self.scores = scores }

    /// The gates `recorder` holds (keys `gate.<layer>.<location>`); other keys are ignored.
    public init(_ recorder: Recorder) {
        var s: [Int: [String: Tensor]] = [:]
        for (key, value) in recorder.values where key.hasPrefix("gate.") {
            let parts = key.dropFirst(5).split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, let layer = Int(parts[0]) else { continue }
            s[layer, default: [:]][parts[1]] = value
        }
        scores = s
    }

    /// Every (layer, location) in order: layers ascending, locations by name.
    public var places: [(layer: Int, location: String)] {
        scores.keys.sorted().flatMap { l in scores[l]!.keys.sorted().map { (l, $0) } }
    }

    /// Each sample's gate at `layer` and `location`, averaged over the modules there: `[B]`, or nil.
    public func perSample(layer: Int, location: String) -> [Float]? {
        guard let t = scores[layer]?[location]?.contiguous(), t.rank >= 1, t.shape[0] > 0 else { return nil }
        let b = t.shape[0], n = t.count / b, v = t.scalars
        return (0..<b).map { i in v[(i * n)..<((i + 1) * n)].reduce(0, +) / Float(n) }
    }
}
