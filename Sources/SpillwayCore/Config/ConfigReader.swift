import Yams

/// Reads one YAML mapping, remembering which keys were read, so that every key nobody asked for becomes an
/// error: a misspelt key (`pol_interval`) must not silently fall back to a default.
public struct ConfigReader {
    /// Where this mapping sits, e.g. `sinks[2]`.
    public let path: String
    private let entries: [(key: String, value: Node)]
    private var consumed: Set<String> = []

    init(node: Node, path: String) throws(ConfigError) {
        self.path = path
        guard let mapping = node.mapping else {
            throw ConfigError(key: path.isEmpty ? "(document)" : path, problem: "expected a mapping of keys to values",
                              fix: "write it as `key: value` lines")
        }
        var entries: [(key: String, value: Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                throw ConfigError(key: path, problem: "a key is not a plain string", fix: "use plain key names")
            }
            entries.append((name, value))
        }
        self.entries = entries
    }

    public func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public mutating func node(_ key: String) -> Node? {
        consumed.insert(key)
        guard let node = entries.first(where: { $0.key == key })?.value else { return nil }
        // Yams leaves plain scalars untagged, so YAML's null spellings are recognised here.
        if case .scalar(let scalar) = node, scalar.style == .plain,
           ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            return nil
        }
        return node
    }

    public mutating func has(_ key: String) -> Bool {
        entries.contains { $0.key == key }
    }

    public mutating func optionalString(_ key: String) throws(ConfigError) -> String? {
        guard let node = node(key) else { return nil }
        guard let scalar = node.scalar else {
            throw ConfigError(key: keyPath(key), problem: "expected a single value", fix: "write `\(key): VALUE`")
        }
        return scalar.string
    }

    public mutating func string(_ key: String, fix: String) throws(ConfigError) -> String {
        guard let value = try optionalString(key), !value.isEmpty else {
            throw ConfigError(key: keyPath(key), problem: "is required", fix: fix)
        }
        return value
    }

    public mutating func int(_ key: String, default value: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let text = try optionalString(key) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw ConfigError(key: keyPath(key), problem: "'\(text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)",
                              fix: "set it to a number such as \(value)")
        }
        return number
    }

    public mutating func bool(_ key: String, default value: Bool) throws(ConfigError) -> Bool {
        guard let text = try optionalString(key) else { return value }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            throw ConfigError(key: keyPath(key), problem: "'\(text)' is not true or false", fix: "write true or false")
        }
    }

    public mutating func duration(_ key: String, default value: Duration) throws(ConfigError) -> Duration {
        guard let text = try optionalString(key) else { return value }
        guard let parsed = DurationText.parse(text) else {
            throw ConfigError(key: keyPath(key), problem: "'\(text)' is not a duration",
                              fix: "write a number with a unit: 500ms, 2s, 5m, 1h")
        }
        return parsed
    }

    public mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, default value: T) throws(ConfigError) -> T
    where T.RawValue == String {
        guard let text = try optionalString(key) else { return value }
        guard let parsed = T(rawValue: text) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigError(key: keyPath(key), problem: "'\(text)' is not one of \(allowed)", fix: "use one of \(allowed)")
        }
        return parsed
    }

    public mutating func stringList(_ key: String) throws(ConfigError) -> [String]? {
        guard let node = node(key) else { return nil }
        if let scalar = node.scalar { return [scalar.string] }
        guard let sequence = node.sequence else {
            throw ConfigError(key: keyPath(key), problem: "expected a list", fix: "write `\(key): [a, b]`")
        }
        var items: [String] = []
        for (index, item) in sequence.enumerated() {
            guard let value = item.scalar?.string else {
                throw ConfigError(key: "\(keyPath(key))[\(index)]", problem: "expected a plain value", fix: "list plain values")
            }
            items.append(value)
        }
        return items
    }

    /// The items of a list (one value alone counts as a list of one), each still to be read.
    mutating func list(_ key: String) throws(ConfigError) -> [Node]? {
        guard let node = node(key) else { return nil }
        if node.scalar != nil || node.mapping != nil { return [node] }
        guard let sequence = node.sequence else {
            throw ConfigError(key: keyPath(key), problem: "expected a list", fix: "write `\(key): [a, b]`")
        }
        return Array(sequence)
    }

    public mutating func stringMap(_ key: String) throws(ConfigError) -> [(String, String)]? {
        guard let node = node(key) else { return nil }
        var reader = try ConfigReader(node: node, path: keyPath(key))
        var pairs: [(String, String)] = []
        for entry in reader.entries {
            guard let value = try reader.optionalString(entry.key) else {
                throw ConfigError(key: reader.keyPath(entry.key), problem: "has no value", fix: "give it a value or remove it")
            }
            pairs.append((entry.key, value))
        }
        return pairs
    }

    public mutating func child(_ key: String) throws(ConfigError) -> ConfigReader? {
        guard let node = node(key) else { return nil }
        return try ConfigReader(node: node, path: keyPath(key))
    }

    public mutating func children(_ key: String) throws(ConfigError) -> [ConfigReader]? {
        guard let node = node(key) else { return nil }
        guard let sequence = node.sequence else {
            throw ConfigError(key: keyPath(key), problem: "expected a list", fix: "write each entry as `- key: value`")
        }
        var readers: [ConfigReader] = []
        for (index, item) in sequence.enumerated() {
            readers.append(try ConfigReader(node: item, path: "\(keyPath(key))[\(index)]"))
        }
        return readers
    }

    /// Call once every known key was read.
    public func rejectUnknownKeys() throws(ConfigError) {
        try rejectUnknownKeys(known: consumed)
    }

    /// Checks up front, so a misspelt required key reads "did you mean" rather than "is required".
    public func rejectUnknownKeys(known knownKeys: Set<String>) throws(ConfigError) {
        if let first = unknownKeyErrors(known: knownKeys).first { throw first }
    }

    /// One error per key not in `knownKeys`, in document order (`spillway check` reports them all).
    public func unknownKeyErrors(known knownKeys: Set<String>) -> [ConfigError] {
        let known = knownKeys.sorted()
        return entries.filter { !knownKeys.contains($0.key) }.map { entry in
            let suggestion = known.min { editDistance($0, entry.key) < editDistance($1, entry.key) }
            let hint = suggestion.flatMap { editDistance($0, entry.key) <= 3 ? "did you mean '\($0)'? " : nil } ?? ""
            return ConfigError(key: keyPath(entry.key), problem: "unknown key",
                               fix: "\(hint)known keys here: \(known.joined(separator: ", "))")
        }
    }

    private func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// `500ms`, `2s`, `1.5s`, `5m`, `1h`; a bare number means seconds.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: " ")
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        // A year is far beyond any sensible interval, and keeps the conversion to Int64 from trapping.
        let maximumMilliseconds = 366.0 * 86_400_000
        func milliseconds(_ text: Substring, scale: Double) -> Duration? {
            guard text.allSatisfy({ $0.isNumber || $0 == "." }), let number = Double(text) else { return nil }
            let millis = (number * scale * 1000).rounded()
            guard millis.isFinite, millis >= 0, millis <= maximumMilliseconds else { return nil }
            return .milliseconds(Int64(millis))
        }
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            return milliseconds(trimmed.dropLast(suffix.count), scale: scale)
        }
        return milliseconds(trimmed[...], scale: 1)
    }
}

extension String {
    public func trimmingCharacters(in character: Character) -> String {
        var slice = self[...]
        while slice.first == character { slice.removeFirst() }
        while slice.last == character { slice.removeLast() }
        return String(slice)
    }
}

extension ConfigReader {
    /// A mapping of names to lists (or single values), e.g. `keys: {public.products: [a, b]}`; each entry
    /// with its key path for errors.
    public mutating func listMap(_ key: String) throws(ConfigError) -> [(key: String, values: [String], path: String)]? {
        guard let node = node(key) else { return nil }
        guard let mapping = node.mapping else {
            throw ConfigError(key: keyPath(key), problem: "expected a mapping of table names to lists",
                              fix: "write `\(key): {public.products: [...]}`")
        }
        var entries: [(key: String, values: [String], path: String)] = []
        for (name, value) in mapping {
            guard let entryName = name.string else {
                throw ConfigError(key: keyPath(key), problem: "a key is not a plain string", fix: "use table names as keys")
            }
            let path = "\(keyPath(key)).\(entryName)"
            if entries.contains(where: { $0.key == entryName }) {
                throw ConfigError(key: path, problem: "appears twice", fix: "merge the two lists")
            }
            if let scalar = value.scalar {
                entries.append((entryName, scalar.string.isEmpty ? [] : [scalar.string], path))
            } else if let sequence = value.sequence {
                var items: [String] = []
                for (index, item) in sequence.enumerated() {
                    guard let text = item.scalar?.string else {
                        throw ConfigError(key: "\(path)[\(index)]", problem: "expected a plain value", fix: "list plain values")
                    }
                    items.append(text)
                }
                entries.append((entryName, items, path))
            } else {
                throw ConfigError(key: path, problem: "expected a list", fix: "write `\(entryName): [a, b]`")
            }
        }
        return entries
    }
}
