/// The one template language for every `{...}` a user writes: Redis keys, key patterns and channels, NOTIFY
/// channels, webhook URLs and bodies, Kafka topics.
///
/// - Placeholders: `{id}`, `{schema}`, `{table}`, `{op}`, `{tenant}`, `{prefix}` (Kafka topics only),
///   `{key.C}` (primary-key column C), `{after.C}`, `{before.C}`, `{row.C}` (`after`, or `before` for a
///   delete). `{field|text}` writes `text` where the value is missing.
/// - Braces: `{` starts a placeholder only when a placeholder-shaped name (`word` or `word.column`) and `}`
///   follow; every other brace is literal text, so JSON bodies need no escaping and a Redis Cluster hash
///   tag is `user:{{key.id}}`. A placeholder-shaped name that is not a field is an error (a typo is never
///   sent), and so is `{{` before anything but a placeholder: it was the cache templates' old escape of a
///   literal brace, and reading it literally now would change keys silently.
/// - Missing values: a SQL NULL, an event without a tenant, and a row field whose image the event does not
///   have (`before` of an insert, any row of a truncate) are missing. `render` gives nil when a missing
///   value has no `|text` (a Redis key is then not derived from that image); `rendered` writes it the way
///   the rendering writes null.
/// - Each use picks a `Rendering`: how a value is written (plain, glob-escaped, URL-encoded, JSON,
///   Kafka-safe); nothing else differs between uses.
public struct EventTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Field: Sendable, Hashable, CustomStringConvertible {
        case id, schema, table, op, tenant, prefix
        /// An outbox event's route (`source.outbox.route_by`); missing for every other event.
        case route
        case key(String), after(String), before(String), row(String)

        /// The column a row field reads; nil for the event-level fields.
        public var column: String? {
            switch self {
            case .key(let c), .after(let c), .before(let c), .row(let c): return c
            case .id, .schema, .table, .op, .tenant, .prefix, .route: return nil
            }
        }

        public var description: String {
            switch self {
            case .key(let c): return "{key.\(c)}"
            case .after(let c): return "{after.\(c)}"
            case .before(let c): return "{before.\(c)}"
            case .row(let c): return "{row.\(c)}"
            case .id: return "{id}"
            case .schema: return "{schema}"
            case .table: return "{table}"
            case .op: return "{op}"
            case .tenant: return "{tenant}"
            case .prefix: return "{prefix}"
            case .route: return "{route}"
            }
        }

        static let known = "{id}, {schema}, {table}, {op}, {tenant}, {prefix}, {route}, {key.COLUMN}, {after.COLUMN}, {before.COLUMN} or {row.COLUMN}"
    }

    public struct Placeholder: Sendable, Hashable {
        public var field: Field
        /// `{tenant|none}`: written instead of a missing value.
        public var fallback: String?
        /// The placeholder sits between double quotes of the template's own text (a JSON string).
        var isInsideJSONString: Bool
    }

    enum Part: Sendable, Hashable {
        case literal(String)
        case placeholder(Placeholder)
    }

    /// How values are written; the template's own text is written as it is.
    public enum Rendering: Sendable, Hashable {
        /// The value's text: strings unquoted, numbers as their exact literal, missing as `null`. Redis keys
        /// and channels, NOTIFY channels.
        case plain
        /// `plain` with Redis glob metacharacters in values backslash-escaped, so a value holding `*` cannot
        /// widen a key pattern.
        case glob
        /// The value's text percent-encoded except RFC 3986's unreserved characters; missing as nothing.
        case url
        /// JSON. Between the template's own double quotes a value is its text with JSON string escaping and
        /// no quotes of its own (missing: nothing); elsewhere it is written as JSON (strings quoted, numbers
        /// exact, objects, arrays; missing: `null`).
        case json
        /// Kafka topic names: characters outside `[A-Za-z0-9._-]` become `_`; a missing or empty value is
        /// `_none`.
        case topicName

        /// What a missing value (or SQL NULL) is written as, outside JSON.
        var missingText: String {
            switch self {
            case .plain, .glob: return "null"
            case .url: return ""
            case .json: return ""
            case .topicName: return EventTemplate.noTopicValue
            }
        }
    }

    /// Which row image the row fields read.
    public enum Image: Sendable, Hashable {
        /// As written: `after.C` from `after`, `before.C` from `before`, `row.C` and `key.C` from
        /// `after ?? before` (`key.C` from the event's key first).
        case current
        /// Every row field from `before`: the keys a row had before the change (an update that moved a
        /// product to another category must invalidate the old category's keys too).
        case previous
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        /// 1-based, in characters, where the problem starts.
        public var column: Int
        public var problem: String
        public var fix: String
        public var description: String { "column \(column): \(problem). Fix: \(fix)" }
    }

    /// What a Kafka-safe rendering writes for a missing or empty value.
    public static let noTopicValue = "_none"

    /// The template as written in the configuration.
    public let text: String
    let parts: [Part]

    public init(parsing text: String) throws(ParseError) {
        self.text = text
        let chars = Array(text)
        var parts: [Part] = []
        var literal = ""
        var inString = false
        var escaped = false
        var index = 0
        while index < chars.count {
            let c = chars[index]
            if c == "{" {
                switch try Self.placeholder(in: chars, at: index) {
                case .placeholder(let field, let fallback, let end):
                    if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                    parts.append(.placeholder(Placeholder(field: field, fallback: fallback, isInsideJSONString: inString)))
                    index = end
                    continue
                case .notAPlaceholder:
                    if index + 1 < chars.count, chars[index + 1] == "{",
                       case .notAPlaceholder = try Self.placeholder(in: chars, at: index + 1) {
                        throw ParseError(column: index + 1, problem: "'\(text)' has '{{', which no longer escapes a brace",
                                         fix: "a brace that does not start a placeholder is literal: write one '{' (a hash tag around a value is {{key.id}})")
                    }
                }
            }
            if escaped {
                escaped = false
            } else if c == "\\" && inString {
                escaped = true
            } else if c == "\"" {
                inString.toggle()
            }
            literal.append(c)
            index += 1
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    /// A template from parts already parsed (`fillingMissingTenant(with:)`).
    init(text: String, parts: [Part]) {
        self.text = text
        self.parts = parts
    }

    private enum Scanned {
        case placeholder(Field, fallback: String?, end: Int)
        case notAPlaceholder
    }

    /// Reads `{name}` or `{name|fallback}` at `start` (a `{`).
    private static func placeholder(in chars: [Character], at start: Int) throws(ParseError) -> Scanned {
        var index = start + 1
        var word = ""
        while index < chars.count, isWordCharacter(chars[index], first: word.isEmpty) {
            word.append(chars[index])
            index += 1
        }
        guard !word.isEmpty, index < chars.count else { return .notAPlaceholder }
        var column: String?
        if chars[index] == "." {
            index += 1
            var name = ""
            while index < chars.count, !"{}|\"".contains(chars[index]) {
                name.append(chars[index])
                index += 1
            }
            guard !name.isEmpty else { return .notAPlaceholder }
            column = name
        }
        var fallback: String?
        if index < chars.count, chars[index] == "|" {
            index += 1
            var text = ""
            while index < chars.count, !"{}\"".contains(chars[index]) {
                text.append(chars[index])
                index += 1
            }
            fallback = text
        }
        guard index < chars.count, chars[index] == "}" else { return .notAPlaceholder }
        let name = column.map { "\(word).\($0)" } ?? word
        guard let field = field(word: word, column: column) else {
            throw ParseError(column: start + 1, problem: "'\(String(chars))' uses an unknown placeholder '{\(name)}'",
                             fix: "use \(Field.known)")
        }
        return .placeholder(field, fallback: fallback, end: index + 1)
    }

    private static func isWordCharacter(_ c: Character, first: Bool) -> Bool {
        guard let ascii = c.asciiValue else { return false }
        switch ascii {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"): return true
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return !first
        default: return false
        }
    }

    private static func field(word: String, column: String?) -> Field? {
        guard let column else {
            switch word {
            case "id": return .id
            case "schema": return .schema
            case "table": return .table
            case "op": return .op
            case "tenant": return .tenant
            case "prefix": return .prefix
            case "route": return .route
            default: return nil
            }
        }
        switch word {
        case "key": return .key(column)
        case "after": return .after(column)
        case "before": return .before(column)
        case "row": return .row(column)
        default: return nil
        }
    }

    public var description: String { text }

    public var placeholders: [Placeholder] {
        parts.compactMap { if case .placeholder(let p) = $0 { return p } else { return nil } }
    }

    public var fields: [Field] { placeholders.map(\.field) }

    /// Whether any field reads a row column (as opposed to id, schema, table, op, tenant, prefix).
    public var readsRow: Bool { fields.contains { $0.column != nil } }

    /// Whether two events of one table, tenant and operation can render differently: the template reads a
    /// row column, the event id or an outbox route.
    public var readsEventValues: Bool { fields.contains { $0.column != nil || $0 == .id || $0 == .route } }

    /// The template's own text, without its placeholders: what a use checks for characters it cannot carry.
    public var literalText: String {
        parts.reduce(into: "") { if case .literal(let l) = $1 { $0 += l } }
    }

    /// A Redis key template whose own text contains `*` names a key pattern (Redis glob), not a key.
    public var isPattern: Bool { literalText.contains("*") }

    /// The first field `table` cannot supply, described for an error message; nil when every field resolves.
    public func problem(with table: TableInfo) -> String? {
        for field in fields {
            guard let column = field.column else { continue }
            if table.column(named: column) == nil {
                let known = table.columns.map(\.name).joined(separator: ", ")
                return "\(field) names column '\(column)', which \(table.qualifiedName) does not have (its columns: \(known))"
            }
            if case .key = field, !table.primaryKey.contains(column) {
                return table.primaryKey.isEmpty
                    ? "\(field) reads the primary key, but \(table.qualifiedName) has none (use {row.\(column)})"
                    : "\(field) names '\(column)', which is not in the primary key of \(table.qualifiedName) "
                        + "(\(table.primaryKey.joined(separator: ", "))); use {row.\(column)}"
            }
        }
        return nil
    }

    // MARK: Rendering

    /// The template filled from `event`, or nil when a value is missing from that image and its placeholder
    /// has no `|text`. A SQL NULL is not missing here: it is written as the rendering writes null.
    public func render(_ event: ChangeEvent, as rendering: Rendering, image: Image = .current, prefix: String = "") -> String? {
        render(event, as: rendering, image: image, prefix: prefix, fillingAbsent: false)
    }

    /// The template filled from `event`; a missing value is written as the rendering writes null. For
    /// destinations (channels, URLs, bodies, topics), where every event must go somewhere.
    public func rendered(_ event: ChangeEvent, as rendering: Rendering, image: Image = .current, prefix: String = "") -> String {
        render(event, as: rendering, image: image, prefix: prefix, fillingAbsent: true) ?? ""
    }

    private func render(_ event: ChangeEvent, as rendering: Rendering, image: Image, prefix: String, fillingAbsent: Bool) -> String? {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text):
                out += text
            case .placeholder(let placeholder):
                let value = Self.value(of: placeholder.field, in: event, image: image, prefix: prefix)
                if let fallback = placeholder.fallback, value == nil || value == .null || value == .string("") {
                    out += Self.write(.string(fallback), as: rendering, insideJSONString: placeholder.isInsideJSONString)
                } else if let value {
                    out += Self.write(value, as: rendering, insideJSONString: placeholder.isInsideJSONString)
                } else if fillingAbsent {
                    out += Self.write(.null, as: rendering, insideJSONString: placeholder.isInsideJSONString)
                } else {
                    return nil
                }
            }
        }
        return out
    }

    static func write(_ value: JSONValue, as rendering: Rendering, insideJSONString: Bool) -> String {
        switch rendering {
        case .plain:
            return value.plainText
        case .glob:
            return escapingGlob(value.plainText)
        case .url:
            return value == .null ? rendering.missingText : percentEncoded(value.plainText)
        case .topicName:
            let text = value == .null ? "" : value.plainText
            return text.isEmpty ? rendering.missingText : TopicName.sanitized(text)
        case .json:
            guard insideJSONString else { return JSONEncoding.string(value) }
            guard value != .null else { return rendering.missingText }
            return String(JSONEncoding.string(.string(value.plainText)).dropFirst().dropLast())
        }
    }

    /// A Redis pattern matching every key this template can render for `event`'s table: each row field
    /// becomes `*`, the rest is glob-escaped unless the template is a pattern already. What a truncate
    /// invalidates.
    public func wildcardPattern(for event: ChangeEvent) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text):
                out += isPattern ? text : Self.escapingGlob(text)
            case .placeholder(let placeholder):
                if placeholder.field.column != nil {
                    out += "*"
                } else {
                    let value = Self.value(of: placeholder.field, in: event, image: .current, prefix: "") ?? .null
                    out += Self.write(value == .null ? .string(placeholder.fallback ?? "null") : value, as: .glob, insideJSONString: false)
                }
            }
        }
        return out
    }

    /// The value `field` reads, nil when the event does not have it (SQL NULL and a missing tenant are `.null`).
    static func value(of field: Field, in event: ChangeEvent, image: Image, prefix: String) -> JSONValue? {
        switch field {
        case .id: return .string(event.id)
        case .schema: return .string(event.schema)
        case .table: return .string(event.table)
        case .op: return .string(event.op.rawValue)
        case .tenant: return event.tenant.map { .string($0) } ?? .null
        case .prefix: return .string(prefix)
        case .route: return event.outbox.map { $0.route.map { .string($0) } ?? .null }
        case .key(let c), .after(let c), .before(let c), .row(let c):
            let source: JSONObject?
            switch (image, field) {
            case (.previous, _): source = event.before
            case (.current, .key): source = event.key ?? event.currentRow
            case (.current, .after): source = event.after
            case (.current, .before): source = event.before
            default: source = event.currentRow
            }
            return source?[c]
        }
    }

    /// Backslash-escapes Redis glob metacharacters.
    public static func escapingGlob(_ text: String) -> String {
        guard text.contains(where: { "*?[]\\".contains($0) }) else { return text }
        var out = ""
        for c in text {
            if "*?[]\\".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF")
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return out
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
