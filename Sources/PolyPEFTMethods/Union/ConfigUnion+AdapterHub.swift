import PolyPEFTCore
import PolyPEFTIO

/// A union in the adapters library's format: `{"architecture": "union", "configs": [<each part's config>]}`, every
/// part one of the methods the library shares with us (`AdapterHubMethods.registered`). The parts' adapters share the
/// union's name in their keys, as in the library (one adapter name, several method modules).
extension ConfigUnion: AdapterHubMethod {
    public static var adapterHubArchitectures: [String?] { ["union"] }

    public init(adapterHubConfig json: JSONValue, context: String) throws {
        self.init()
        let r = try JSONObjectReader(json, context: context)
        guard let parts = r.present("configs")?.arrayValue else {
            throw ConfigError("\(context): a union needs \"configs\", a list of method configs")
        }
        let extra = r.unknown(known: ["architecture", "configs"])
        if let key = extra.keys.sorted().first { throw ConfigError("\(context): '\(key)' is not a key of the adapters library's ConfigUnion") }
        configs = try parts.enumerated().map { i, part in
            let c = try AdapterHubMethods.config(adapterHubConfig: part, context: "\(context) configs[\(i)]")
            if c is ConfigUnion { throw ConfigError("\(context) configs[\(i)]: a union cannot contain a union") }
            return c
        }
        try validate(context: context)
    }

    public var adapterHubConfig: JSONValue {
        ["architecture": "union",
         "configs": .array(configs.map { ($0 as? any AdapterHubMethod)?.adapterHubConfig ?? $0.json })]
    }
}
