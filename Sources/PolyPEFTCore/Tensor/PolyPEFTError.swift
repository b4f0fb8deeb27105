/// What every error the library throws is: a value with a `message` for people and a `description` that puts the
/// place first (`"<file>:<line>: ..."`, `"<op>: ..."`), thrown instead of trapping whenever a caller's input (a
/// file, a config, a shape, a flag) is at fault. One type per layer, each named for what it concerns:
///
/// ```
/// TensorError         Tensor/      an op's operands do not fit (names the op and the shapes)
/// AutogradError       Autograd/    misuse of the gradient machinery
/// ModuleError         Layers/      a bad path, replacement or weight in the module tree
/// ModelError          Models/      a bad model config, token ids, masks or hook inputs
/// ConfigError         IO/          a bad configuration value (names the source, key and value)
/// JSONError           IO/          JSON that does not parse (the byte offset)
/// FileFormatError     IO/          a file or folder that cannot be read or written: a malformed safetensors file
///                                  (the path, the tensor key and the numbers), a missing adapter_config.json
/// PolyError           Poly/        a Poly/MHR operation that does not apply (a merged task, unknown tasks)
/// MultitaskDataError  Training/    bad training data (the file and line)
/// ```
public protocol PolyPEFTError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, without the place.
    var message: String { get }
}
