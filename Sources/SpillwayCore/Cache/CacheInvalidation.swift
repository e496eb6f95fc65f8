extension EventTemplate {
    /// A channel name (Redis PUBLISH, NOTIFY) for `event`: from the event as written, else from its `before`
    /// image (a delete's `{after.C}`), else with missing values written as `null` (a truncate's row
    /// fields): a message must go somewhere.
    public func channel(for event: ChangeEvent) -> String {
        render(event, as: .plain) ?? render(event, as: .plain, image: .previous) ?? rendered(event, as: .plain)
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
            guard let text = template.render(event, as: template.isPattern ? .glob : .plain, image: image) else { continue }
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
