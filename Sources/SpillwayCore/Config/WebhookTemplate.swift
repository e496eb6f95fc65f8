/// A text with placeholders over event fields, for webhook URLs and bodies: `{schema}`, `{table}`, `{op}`,
/// `{id}`, `{tenant}`, `{key.X}`, `{after.X}`, `{before.X}` (X a column). A `{` not followed by such a name
/// and `}` is plain text, so JSON templates need no escaping: `{"slug": "{after.slug}"}`.
public struct WebhookTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Field: Sendable, Hashable {
        case schema, table, op, id, tenant
        case key(String), after(String), before(String)
    }

    enum Segment: Sendable, Hashable {
        case text(String)
        /// `isInsideString`: the placeholder sits inside a JSON string literal of the template.
        case field(Field, isInsideString: Bool)
    }

    /// How substituted values are written.
    public enum Escaping: Sendable {
        /// For URLs: the value's plain text, percent-encoded except for RFC 3986 unreserved characters.
        case url
        /// For JSON bodies. Inside a JSON string (between the template's own double quotes) a value is
        /// written as its plain text with JSON string escaping (`"` → `\"`, `\` → `\\`, control characters
        /// → `\n`, `\u0001`…) and no quotes of its own; a missing value or null becomes the empty string.
        /// Outside quotes the value is written as JSON: strings quoted and escaped, numbers (also `numeric`,
        /// which is a string in events) as they are in the event, `true`/`false`, objects, arrays, and
        /// `null` for a missing value.
        case json
    }

    let segments: [Segment]
    public let source: String

    public var description: String { source }

    /// Throws a `ConfigError` for `key` on an unknown placeholder (`{aftr.slug}`), so a typo is not sent.
    public init(parsing text: String, key: String) throws(ConfigError) {
        source = text
        var segments: [Segment] = []
        var literal = ""
        var inString = false
        var escaped = false
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if c == "{", let close = text[index...].firstIndex(of: "}"),
               let name = Optional(String(text[text.index(after: index)..<close])), Self.looksLikePlaceholder(name) {
                guard let field = Self.field(named: name) else {
                    throw ConfigError(key: key, problem: "unknown placeholder {\(name)}",
                                      fix: "use {schema}, {table}, {op}, {id}, {tenant}, {key.COLUMN}, {after.COLUMN} or {before.COLUMN}")
                }
                if !literal.isEmpty { segments.append(.text(literal)); literal = "" }
                segments.append(.field(field, isInsideString: inString))
                index = text.index(after: close)
                continue
            }
            if escaped {
                escaped = false
            } else if c == "\\" && inString {
                escaped = true
            } else if c == "\"" {
                inString.toggle()
            }
            literal.append(c)
            index = text.index(after: index)
        }
        if !literal.isEmpty { segments.append(.text(literal)) }
        self.segments = segments
    }

    /// `name` or `prefix.column`, letters, digits and `_`.
    static func looksLikePlaceholder(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        return parts.allSatisfy { part in
            guard let first = part.first, first.isLetter || first == "_" else { return false }
            return part.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
        }
    }

    static func field(named name: String) -> Field? {
        switch name {
        case "schema": return .schema
        case "table": return .table
        case "op": return .op
        case "id": return .id
        case "tenant": return .tenant
        default:
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return nil }
            switch parts[0] {
            case "key": return .key(parts[1])
            case "after": return .after(parts[1])
            case "before": return .before(parts[1])
            default: return nil
            }
        }
    }

    /// Whether the template uses any placeholder at all.
    public var hasPlaceholders: Bool { segments.contains { if case .field = $0 { return true } else { return false } } }

    public func render(_ event: ChangeEvent, escaping: Escaping) -> String {
        var out = ""
        for segment in segments {
            switch segment {
            case .text(let text): out += text
            case .field(let field, let isInsideString):
                let value = Self.value(of: field, in: event)
                switch escaping {
                case .url:
                    out += Self.percentEncoded(value?.plainText ?? "")
                case .json:
                    if isInsideString {
                        let plain = value.map { $0 == .null ? "" : $0.plainText } ?? ""
                        let quoted = JSONEncoding.string(.string(plain))
                        out += quoted.dropFirst().dropLast()
                    } else {
                        out += JSONEncoding.string(value ?? .null)
                    }
                }
            }
        }
        return out
    }

    static func value(of field: Field, in event: ChangeEvent) -> JSONValue? {
        switch field {
        case .schema: return .string(event.schema)
        case .table: return .string(event.table)
        case .op: return .string(event.op.rawValue)
        case .id: return .string(event.id)
        case .tenant: return event.tenant.map { .string($0) }
        case .key(let column): return event.key?[column]
        case .after(let column): return event.after?[column]
        case .before(let column): return event.before?[column]
        }
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return out
    }
}
