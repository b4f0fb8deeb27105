import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

extension JSONObjectReader {
    /// `target_modules` / `exclude_modules`: a regex string or a list of module names.
    func targets(_ key: String) throws -> TargetModules? {
        guard let v = present(key) else { return nil }
        if let s = v.stringValue { return .regex(s) }
        if let names = try? strings(key) { return .names(names) }
        throw fail(key, "a regex string or a list of module names", v)
    }
}
