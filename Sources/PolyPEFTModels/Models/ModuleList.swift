import PolyPEFTCore
import PolyPEFTIO

/// PyTorch's `nn.ModuleList`: children named `"0"`, `"1"`, ... (the `block.3` and `layer.1` parts of HF names).
public final class ModuleList: Module {
    public init(_ modules: [Module]) {
        super.init()
        for (i, m) in modules.enumerated() { addChild(String(i), m) }
    }

    public var count: Int { children.count }

    /// The `i`-th child.
    public subscript(_ i: Int) -> Module { children[i].module }
}
