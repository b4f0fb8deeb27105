import PolyPEFTCore
import PolyPEFTIO

/// The adapters library's numbering of transformer layers, which its `leave_out`, per-layer reduction factors and
/// gating scores use: the number after the first `layer` or `block` component of a module's path, with an
/// encoder-decoder's decoder layers counted after its encoder's (`decoder.block.0` of a 2 + 2 layer T5 is layer 2).
public enum AdapterHubLayers {
    /// The layer index of each path (all paths of one model, so that the encoder's layer count is known).
    public static func indices(_ paths: [String]) throws -> [Int] {
        func parse(_ path: String) throws -> (decoder: Bool, index: Int) {
            let parts = path.split(separator: ".").map(String.init)
            for i in parts.indices.dropLast() where parts[i] == "layer" || parts[i] == "block" {
                if let n = Int(parts[i + 1]) { return (parts[..<i].contains("decoder"), n) }
            }
            throw ConfigError("\(path): no layer index in this module's path")
        }
        let parsed = try paths.map(parse)
        let encoderLayers = (parsed.filter { !$0.decoder }.map(\.index).max() ?? -1) + 1
        return parsed.map { $0.decoder ? $0.index + encoderLayers : $0.index }
    }
}
