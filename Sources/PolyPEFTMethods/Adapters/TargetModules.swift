import PolyPEFTCore
import PolyPEFTIO
import PolyPEFTModels

/// Which modules an adapter applies to, matched as PEFT matches them against dotted module names:
///
/// - `.regex(pattern)`: the pattern must match the **whole** name (`re.fullmatch`);
/// - `.names(list)`: the name equals an entry, or ends with `"." + entry`.
///
/// PEFT writes a list as a set, so the order of `.names` has no meaning.
public enum TargetModules: Equatable, Sendable {
    case names([String])
    case regex(String)

    /// Whether the dotted module `name` is targeted. Throws for a regex that does not compile.
    public func matches(_ name: String) throws -> Bool {
        switch self {
        case .names(let list):
            return list.contains { TargetModules.name(name, matches: $0) }
        case .regex(let pattern):
            let re: Regex<AnyRegexOutput>
            do { re = try Regex(pattern) } catch {
                throw ConfigError("target regex '\(pattern)' does not compile: \(error)")
            }
            return (try? re.wholeMatch(in: name)) != nil
        }
    }

    /// PEFT's rule for a listed name (targets and `modules_to_save` alike): the dotted module `name` equals `entry`
    /// or ends with `"." + entry`.
    static func name(_ name: String, matches entry: String) -> Bool { name == entry || name.hasSuffix("." + entry) }

    var json: JSONValue {
        switch self {
        case .names(let list): return .array(list.map { .string($0) })
        case .regex(let p): return .string(p)
        }
    }

    /// How it reads in messages: `["fc1", "fc2"]` or `regex '.*q$'`.
    public var summary: String {
        switch self {
        case .names(let list): return "[" + list.sorted().map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case .regex(let p): return "regex '\(p)'"
        }
    }
}
