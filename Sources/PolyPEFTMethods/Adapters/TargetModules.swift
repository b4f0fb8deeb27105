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
            let re = try TargetModules.compile(pattern, what: "target regex '\(pattern)'")
            return (try? re.wholeMatch(in: name)) != nil
        }
    }

    /// Deepest nesting of brackets a pattern from a config may have. Swift's regex parser recurses once per nested
    /// `[` (and `(`) and overflows the stack at a few thousand levels; PEFT configs use a handful.
    static let maxRegexNesting = 64

    /// `pattern` compiled; `what` names it in errors. Nesting deeper than `maxRegexNesting` is refused before parsing.
    static func compile(_ pattern: String, what: String) throws -> Regex<AnyRegexOutput> {
        let depth = bracketNesting(pattern)
        guard depth <= maxRegexNesting else {
            throw ConfigError("\(what) does not compile: brackets nested \(depth) deep (at most \(maxRegexNesting))")
        }
        do { return try Regex(pattern) } catch { throw ConfigError("\(what) does not compile: \(error)") }
    }

    /// The deepest nesting of unescaped `(` and `[` in `pattern` (an unmatched closing bracket counts as none; a
    /// bracket inside a character class counts too, so this may overstate, never understate, what the parser sees).
    static func bracketNesting(_ pattern: String) -> Int {
        var depth = 0, deepest = 0, escaped = false
        for c in pattern.utf8 {
            if escaped { escaped = false; continue }
            switch c {
            case UInt8(ascii: "\\"): escaped = true
            case UInt8(ascii: "("), UInt8(ascii: "["):
                depth += 1
                deepest = Swift.max(deepest, depth)
            case UInt8(ascii: ")"), UInt8(ascii: "]"): depth = Swift.max(0, depth - 1)
            default: break
            }
        }
        return deepest
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
