import Yams

/// Environment variables that override single values of the YAML, so a container needs no templated config:
/// `SPILLWAY_` + the key's path in upper case with `__` between its parts (`source.batch_size` is
/// `SPILLWAY_SOURCE__BATCH_SIZE`, `sinks[0].path` is `SPILLWAY_SINKS__0__PATH`). `__` is the separator
/// because keys themselves contain `_`. A variable is an override only if its name has a `__` or is one of
/// the top-level single values (`SPILLWAY_CONSUMER`, `SPILLWAY_SCHEMA`), so the older
/// `SPILLWAY_DATABASE_URL` and unrelated `SPILLWAY_*` variables are not read as keys.
///
/// Overrides are applied to the parsed YAML tree before it is read, so every check (unknown keys, ranges,
/// required values) applies to them exactly as to the file; an error on an overridden key names the variable.
public enum EnvironmentOverrides {
    public struct Override: Sendable, Equatable {
        /// The environment variable, e.g. `SPILLWAY_SOURCE__BATCH_SIZE`.
        public var variable: String
        /// The key path it sets, e.g. `["source", "batch_size"]`; a number is an index into a list.
        public var path: [String]
        public var value: String

        /// The key as config errors spell it: `source.batch_size`, `sinks[0].path`.
        public var keyPath: String {
            var text = ""
            for part in path {
                if let index = Int(part) { text += "[\(index)]" } else { text += text.isEmpty ? part : ".\(part)" }
            }
            return text
        }
    }

    static let prefix = "SPILLWAY_"
    /// The top-level keys that hold a single value: their variables need no `__`.
    static let topLevelValues: Set<String> = ["consumer", "schema"]

    /// The overrides in `environment`, sorted by variable name (so that errors come out in a stable order).
    public static func overrides(in environment: [String: String]) throws(ConfigError) -> [Override] {
        var overrides: [Override] = []
        for (variable, value) in environment.sorted(by: { $0.key < $1.key }) where variable.hasPrefix(prefix) {
            if topLevelValues.contains(variable.dropFirst(prefix.count).lowercased()) {
                overrides.append(Override(variable: variable, path: [variable.dropFirst(prefix.count).lowercased()], value: value))
                continue
            }
            guard variable.contains("__") else { continue }
            let parts = variable.dropFirst(prefix.count).split(separator: "__", omittingEmptySubsequences: false).map { $0.lowercased() }
            guard !parts.contains(where: \.isEmpty), let first = parts.first, Int(first) == nil else {
                throw ConfigError(key: variable, problem: "is not a key path (parts separated by one `__` each)",
                                  fix: "name the key as SPILLWAY_SECTION__KEY, e.g. SPILLWAY_SOURCE__BATCH_SIZE, or unset \(variable)")
            }
            overrides.append(Override(variable: variable, path: parts, value: value))
        }
        return overrides
    }

    /// `root` with every override set; sections the YAML lacks are created.
    public static func apply(_ overrides: [Override], to root: Node) throws(ConfigError) -> Node {
        var root = root
        for override in overrides {
            root = try set(override, at: override.path[...], in: root, parentPath: [])
        }
        return root
    }

    private static func set(_ override: Override, at path: ArraySlice<String>, in node: Node?, parentPath: [String]) throws(ConfigError) -> Node {
        guard let part = path.first else {
            if let node, node.scalar == nil {
                throw ConfigError(key: override.keyPath, problem: "is a section or a list; \(override.variable) can only set a single value",
                                  fix: "override the values inside it one by one, or unset \(override.variable)")
            }
            return Node(override.value, .implicit, .plain)
        }
        let here = Override(variable: override.variable, path: parentPath, value: "").keyPath
        if let index = Int(part) {
            guard let node, let sequence = node.sequence else {
                throw ConfigError(key: here.isEmpty ? override.variable : here,
                                  problem: "\(override.variable) indexes it as a list, but it is not one",
                                  fix: "name an existing list entry, or unset \(override.variable)")
            }
            var items = Array(sequence)
            guard items.indices.contains(index) else {
                throw ConfigError(key: here, problem: "\(override.variable) sets entry \(index), but the list has \(items.count)",
                                  fix: "add the entry in the YAML (overrides only set values of entries that exist), or unset \(override.variable)")
            }
            items[index] = try set(override, at: path.dropFirst(), in: items[index], parentPath: parentPath + [part])
            return Node(items, sequence.tag, sequence.style)
        }
        var pairs: [(Node, Node)] = []
        var tag = Tag.implicit
        var style = Node.Mapping.Style.any
        if let node {
            guard let mapping = node.mapping else {
                throw ConfigError(key: here, problem: "\(override.variable) sets a key inside it, but it is a single value",
                                  fix: "unset \(override.variable), or override `\(here)` itself")
            }
            pairs = mapping.map { ($0.key, $0.value) }
            tag = mapping.tag
            style = mapping.style
        }
        if let index = pairs.firstIndex(where: { $0.0.string == part }) {
            pairs[index].1 = try set(override, at: path.dropFirst(), in: pairs[index].1, parentPath: parentPath + [part])
        } else {
            pairs.append((Node(part), try set(override, at: path.dropFirst(), in: nil, parentPath: parentPath + [part])))
        }
        return Node(pairs, tag, style)
    }

    /// An error on an overridden key (or inside it) names the variable the value came from. Idempotent, so
    /// errors found after parsing (an address that cannot be bound) can go through it too.
    public static func attribute(_ error: ConfigError, to overrides: [Override]) -> ConfigError {
        guard let override = overrides.first(where: { error.key == $0.keyPath || error.key.hasPrefix($0.keyPath + ".") || error.key.hasPrefix($0.keyPath + "[") })
        else { return error }
        guard !error.problem.contains("environment variable \(override.variable)") else { return error }  // attributed already
        var error = error
        error.problem += " (the value comes from the environment variable \(override.variable))"
        error.fix = "correct or unset \(override.variable): " + error.fix
        return error
    }
}
