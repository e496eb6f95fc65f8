/// A text template over a change event's fields, e.g. `product:{key.id}:v1` or `spillway_{table}`: what the
/// cache sinks use for Redis keys, key patterns and channel names.
///
/// Placeholders: `{key.X}` (primary-key column X), `{after.X}`, `{before.X}`, `{row.X}` (`after`, or
/// `before` for a delete), `{schema}`, `{table}`, `{op}`, `{tenant}`. `{{` and `}}` are literal braces, so
/// a Redis Cluster hash tag reads `user:{{{key.id}}}`. Values render as their plain text: strings
/// unquoted, numbers as their exact literal, SQL NULL (and a missing tenant) as `null`.
public struct EventTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Field: Sendable, Hashable, CustomStringConvertible {
        case key(String), after(String), before(String), row(String)
        case schema, table, op, tenant

        /// The column a row field reads; nil for the event-level fields.
        public var column: String? {
            switch self {
            case .key(let c), .after(let c), .before(let c), .row(let c): return c
            case .schema, .table, .op, .tenant: return nil
            }
        }

        public var description: String {
            switch self {
            case .key(let c): return "{key.\(c)}"
            case .after(let c): return "{after.\(c)}"
            case .before(let c): return "{before.\(c)}"
            case .row(let c): return "{row.\(c)}"
            case .schema: return "{schema}"
            case .table: return "{table}"
            case .op: return "{op}"
            case .tenant: return "{tenant}"
            }
        }
    }

    enum Part: Sendable, Hashable {
        case literal(String)
        case field(Field)
    }

    /// Which row image the row fields read.
    public enum Image: Sendable, Hashable {
        /// As written: `after.X` from `after`, `before.X` from `before`, `row.X` from `after ?? before`.
        case current
        /// Every row field from `before`: the keys the row had before the change (an update that moved a
        /// product to another category must invalidate the old category's keys too).
        case previous
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var problem: String
        public var fix: String
        public var description: String { "\(problem). Fix: \(fix)" }
    }

    /// The template as written in the configuration.
    public let text: String
    let parts: [Part]

    public init(parsing text: String) throws(ParseError) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            switch c {
            case "{" where chars.first == "{":
                chars.removeFirst()
                literal.append("{")
            case "}" where chars.first == "}":
                chars.removeFirst()
                literal.append("}")
            case "{":
                guard let close = chars.firstIndex(of: "}") else {
                    throw ParseError(problem: "'\(text)' has a '{' that is never closed",
                                     fix: "close the placeholder with '}', or write '{{' for a literal brace")
                }
                let name = String(chars[chars.startIndex..<close])
                chars = chars[(close + 1)...]
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                parts.append(.field(try Self.field(named: name, in: text)))
            case "}":
                throw ParseError(problem: "'\(text)' has a '}' that closes nothing", fix: "write '}}' for a literal brace")
            default:
                literal.append(c)
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    private static func field(named name: String, in text: String) throws(ParseError) -> Field {
        switch name {
        case "schema": return .schema
        case "table": return .table
        case "op": return .op
        case "tenant": return .tenant
        default: break
        }
        let allowed = "use {key.COLUMN}, {after.COLUMN}, {before.COLUMN}, {row.COLUMN}, {schema}, {table}, {op} or {tenant}"
        guard let dot = name.firstIndex(of: ".") else {
            throw ParseError(problem: "'\(text)' uses an unknown placeholder field '{\(name)}'", fix: allowed)
        }
        let column = String(name[name.index(after: dot)...])
        guard !column.isEmpty else {
            throw ParseError(problem: "'\(text)' has a placeholder '{\(name)}' without a column name", fix: allowed)
        }
        switch name[..<dot] {
        case "key": return .key(column)
        case "after": return .after(column)
        case "before": return .before(column)
        case "row": return .row(column)
        default:
            throw ParseError(problem: "'\(text)' uses an unknown placeholder field '{\(name)}'", fix: allowed)
        }
    }

    public var description: String { text }

    public var fields: [Field] {
        parts.compactMap { if case .field(let f) = $0 { return f } else { return nil } }
    }

    /// Whether any field reads a row column (as opposed to schema, table, op, tenant).
    public var readsRow: Bool { fields.contains { $0.column != nil } }

    /// A template whose own text contains `*` names a key pattern (Redis glob), not a key.
    public var isPattern: Bool {
        parts.contains { if case .literal(let l) = $0 { return l.contains("*") } else { return false } }
    }

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

    /// The template filled from `event`, or nil when a field it needs is absent from that image (an insert
    /// has no `before`, a delete no `after`, a truncate neither). `escapingGlob` escapes values (not the
    /// template's own text) so a value holding `*` or `?` cannot widen a pattern.
    public func render(_ event: ChangeEvent, image: Image = .current, escapingGlob: Bool = false) -> String? {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text):
                out += text
            case .field(let field):
                guard let value = Self.value(of: field, in: event, image: image) else { return nil }
                out += escapingGlob ? Self.escapingGlob(value) : value
            }
        }
        return out
    }

    /// Like `render`, but a field the event lacks renders empty: for channel names, where a message must go
    /// somewhere even for an event without the row fields a template reads.
    public func renderLeniently(_ event: ChangeEvent) -> String {
        if let text = render(event) ?? render(event, image: .previous) { return text }
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text): out += text
            case .field(let field): out += Self.value(of: field, in: event, image: .current) ?? ""
            }
        }
        return out
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
            case .field(let field):
                if field.column != nil {
                    out += "*"
                } else {
                    out += Self.escapingGlob(Self.value(of: field, in: event, image: .current) ?? "")
                }
            }
        }
        return out
    }

    static func value(of field: Field, in event: ChangeEvent, image: Image) -> String? {
        switch field {
        case .schema: return event.schema
        case .table: return event.table
        case .op: return event.op.rawValue
        case .tenant: return event.tenant ?? "null"
        case .key(let c), .after(let c), .before(let c), .row(let c):
            let source: JSONObject?
            switch (image, field) {
            case (.previous, _): source = event.before
            case (.current, .key): source = event.key ?? event.currentRow
            case (.current, .after): source = event.after
            case (.current, .before): source = event.before
            default: source = event.currentRow
            }
            return source?[c]?.plainText
        }
    }

    /// Backslash-escapes Redis glob metacharacters.
    public static func escapingGlob(_ text: String) -> String {
        var out = ""
        for c in text {
            if c == "*" || c == "?" || c == "[" || c == "]" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

/// What a Redis `del` sink removes for a batch: exact keys (UNLINK) and key patterns (SCAN MATCH, then
/// UNLINK), each once, in first-seen order.
public struct CacheInvalidation: Sendable, Hashable {
    public var keys: [String] = []
    public var patterns: [String] = []
    private var seenKeys: Set<String> = []
    private var seenPatterns: Set<String> = []

    public init() {}

    /// For `events` and the templates of each table (`templates(schema, table)`): every key rendered from
    /// the event as written and, when it has a `before` image, from `before` too, so an update that moves
    /// a row invalidates the keys of both its old and its new place. A truncate invalidates everything the
    /// table's templates can name (row fields become `*`).
    public init(events: some Sequence<ChangeEvent>, templates: (ChangeEvent) -> [EventTemplate]) {
        for event in events {
            for template in templates(event) {
                add(template, for: event)
            }
        }
    }

    public var isEmpty: Bool { keys.isEmpty && patterns.isEmpty }

    public mutating func add(_ template: EventTemplate, for event: ChangeEvent) {
        if event.op == .truncate, template.readsRow {
            addPattern(template.wildcardPattern(for: event))
            return
        }
        var images: [EventTemplate.Image] = [.current]
        if event.before != nil { images.append(.previous) }
        for image in images {
            guard let text = template.render(event, image: image, escapingGlob: template.isPattern) else { continue }
            if template.isPattern { addPattern(text) } else { addKey(text) }
        }
    }

    private mutating func addKey(_ key: String) {
        if seenKeys.insert(key).inserted { keys.append(key) }
    }

    private mutating func addPattern(_ pattern: String) {
        if seenPatterns.insert(pattern).inserted { patterns.append(pattern) }
    }
}

/// The payload `pg_notify` carries: the event's JSON when it fits PostgreSQL's limit, else a compact
/// reference to it.
public enum NotifyPayload {
    /// PostgreSQL rejects a payload of 8000 bytes or more.
    public static let limit = 8000

    /// The event JSON if it is under `limit` bytes, else `{"id","op","schema","table","key"}` (the listener
    /// reads the row itself); the key is null only when even that would not fit.
    public static func text(for event: ChangeEvent, limit: Int = NotifyPayload.limit) -> String {
        let full = event.jsonBytes
        if full.count < limit { return String(decoding: full, as: UTF8.self) }
        var fields: [(String, JSONValue)] = [
            ("id", .string(event.id)), ("op", .string(event.op.rawValue)),
            ("schema", .string(event.schema)), ("table", .string(event.table)),
            ("key", event.key.map { .object($0) } ?? .null),
        ]
        let compact = JSONEncoding.string(.object(JSONObject(fields)))
        if compact.utf8.count < limit { return compact }
        fields[4] = ("key", .null)
        return JSONEncoding.string(.object(JSONObject(fields)))
    }
}
