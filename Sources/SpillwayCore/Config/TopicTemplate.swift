/// A Kafka topic name with placeholders, e.g. `{prefix}.{schema}.{table}`.
///
/// Placeholders: `{prefix}`, `{schema}`, `{table}`, `{tenant}` and `{op}`. Literal text may hold only what
/// Kafka allows in a topic name (ASCII letters, digits, `.`, `_`, `-`). Values put in for placeholders
/// have every other character replaced by `_` (a schema `Sales Data` becomes `Sales_Data`); an event
/// without a tenant renders `{tenant}` as `_none`.
public struct TopicTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Placeholder: String, Sendable, Hashable, CaseIterable {
        case prefix, schema, table, tenant, op
    }

    enum Part: Sendable, Hashable {
        case literal(String)
        case placeholder(Placeholder)
    }

    /// Why a template was refused, in words for a `ConfigError`.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let problem: String
        public let fix: String
        public var description: String { "\(problem). Fix: \(fix)" }
    }

    /// The template's text, as configured.
    public let text: String
    let parts: [Part]

    /// The default topic of a Kafka sink: `{prefix}.{schema}.{table}`.
    public static let standard = try! TopicTemplate("{prefix}.{schema}.{table}")

    /// What `{tenant}` renders as for an event without a tenant (or with an empty one).
    public static let noTenant = "_none"

    public init(_ text: String) throws(ParseError) {
        let known = Placeholder.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", ")
        guard !text.isEmpty else {
            throw ParseError(problem: "the topic template is empty", fix: "write a topic such as {prefix}.{schema}.{table}")
        }
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(text)
        while let c = rest.first {
            if c == "{" {
                guard let close = rest.firstIndex(of: "}") else {
                    throw ParseError(problem: "'\(text)' has a '{' without its '}'", fix: "close the placeholder; known: \(known)")
                }
                let name = rest[rest.index(after: rest.startIndex)..<close]
                guard let placeholder = Placeholder(rawValue: String(name)) else {
                    throw ParseError(problem: "'\(text)' uses the unknown placeholder '{\(name)}'", fix: "use only \(known)")
                }
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = ""
                parts.append(.placeholder(placeholder))
                rest = rest[rest.index(after: close)...]
            } else if c == "}" {
                throw ParseError(problem: "'\(text)' has a '}' without its '{'", fix: "remove it; placeholders look like {table}")
            } else {
                guard TopicName.isAllowed(c) else {
                    throw ParseError(problem: "'\(text)' contains '\(c)', which Kafka does not allow in a topic name",
                                     fix: "use only ASCII letters, digits, '.', '_' and '-' outside placeholders")
                }
                literal.append(c)
                rest = rest.dropFirst()
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        if parts.allSatisfy({ if case .literal = $0 { return true } else { return false } }), let problem = TopicName.problem(text) {
            throw ParseError(problem: "'\(text)' \(problem)", fix: "choose another topic name")
        }
        self.text = text
        self.parts = parts
    }

    public var description: String { text }

    /// The placeholders the template uses.
    public var placeholders: Set<Placeholder> {
        Set(parts.compactMap { if case .placeholder(let p) = $0 { return p } else { return nil } })
    }

    /// The topic for `event`. The result may still be an invalid name (longer than 249 characters, or
    /// `.`); check it with `TopicName.problem` before producing.
    public func render(_ event: ChangeEvent, prefix: String) -> String {
        var topic = ""
        for part in parts {
            switch part {
            case .literal(let text): topic += text
            case .placeholder(.prefix): topic += TopicName.sanitized(prefix)
            case .placeholder(.schema): topic += TopicName.sanitized(event.schema)
            case .placeholder(.table): topic += TopicName.sanitized(event.table)
            case .placeholder(.op): topic += event.op.rawValue
            case .placeholder(.tenant):
                topic += event.tenant.flatMap { $0.isEmpty ? nil : TopicName.sanitized($0) } ?? Self.noTenant
            }
        }
        return topic
    }
}

/// Kafka's rules for topic names: 1 to 249 of `[A-Za-z0-9._-]`, and neither `.` nor `..`.
public enum TopicName {
    public static let maximumLength = 249

    public static func isAllowed(_ c: Character) -> Bool {
        guard let ascii = c.asciiValue else { return false }
        return isAllowed(ascii)
    }

    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// `text` with every character Kafka does not allow replaced by `_`.
    public static func sanitized(_ text: String) -> String {
        if text.utf8.allSatisfy(isAllowed) { return text }
        return String(text.map { isAllowed($0) ? $0 : "_" })
    }

    /// What is wrong with `name` as a topic name, or nil when it is valid.
    public static func problem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name == "." || name == ".." { return "is not allowed as a topic name" }
        if name.count > maximumLength { return "is \(name.count) characters long; Kafka allows at most \(maximumLength)" }
        if let bad = name.first(where: { !isAllowed($0) }) { return "contains '\(bad)', which Kafka does not allow" }
        return nil
    }
}
