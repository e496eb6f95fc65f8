/// `sinks[].tenant_fallback`: what a sink does with an event that has no tenant (a write made without
/// `app.current_org_id`, a row whose tenant column is NULL). Unset keeps the documented rendering of a
/// missing tenant (`_none` in Kafka topics, `null` in keys and channels, nothing in URLs), so configs from
/// before this key keep working.
public enum TenantFallback: Sendable, Hashable {
    /// The sink does not take the event; it counts as delivered for that sink (the checkpoint moves).
    case skip
    /// Delivering the event to the sink fails, naming the event, the sink and this key; it is retried like
    /// any failed delivery, so the pipeline holds until the writes are fixed or the key changed.
    case error
    /// `{tenant}` renders as this value in every template of the sink (a placeholder's own `|text` wins).
    case `default`(String)

    /// Whether `event` counts as having no tenant: none, or an empty one (which every rendering writes as
    /// missing too).
    public static func lacksTenant(_ event: ChangeEvent) -> Bool {
        event.tenant?.isEmpty ?? true
    }

    static func parse(_ r: inout ConfigReader) throws(ConfigError) -> TenantFallback? {
        let key = r.keyPath("tenant_fallback")
        let form = "write `tenant_fallback: skip`, `tenant_fallback: error` or `tenant_fallback: {default: VALUE}`"
        guard let node = r.node("tenant_fallback") else { return nil }
        if node.mapping != nil {
            guard var mapping = try r.child("tenant_fallback") else { return nil }
            let value = try mapping.string("default", fix: form)
            try mapping.rejectUnknownKeys()
            return .default(value)
        }
        guard let text = node.scalar?.string else {
            throw ConfigError(key: key, problem: "expected skip, error or {default: VALUE}", fix: form)
        }
        switch text {
        case "skip": return .skip
        case "error": return .error
        default:
            throw ConfigError(key: key, problem: "'\(text)' is neither skip nor error",
                              fix: "to render a missing tenant as '\(text)', write `tenant_fallback: {default: \(text)}`; otherwise \(form)")
        }
    }
}

/// A sink with `tenant_fallback: error` was handed an event without a tenant.
public struct MissingTenantError: Error, CustomStringConvertible, Sendable {
    public var eventID: String
    public var table: String
    public var sink: String
    /// `sinks[N].tenant_fallback`.
    public var key: String

    public init(event: ChangeEvent, sink: String, key: String) {
        eventID = event.id
        table = event.qualifiedTable
        self.sink = sink
        self.key = key
    }

    public var description: String {
        "event \(eventID) (\(table)) has no tenant and sink '\(sink)' refuses such events (\(key): error). "
            + "Fix: set app.current_org_id (or the tenant column) for these writes, or change \(key) to skip or {default: VALUE}"
    }
}

extension EventTemplate {
    /// The template with `{tenant}` written as `value` where an event has none (`tenant_fallback: {default:}`);
    /// a `{tenant|text}` keeps its own text.
    public func fillingMissingTenant(with value: String) -> EventTemplate {
        EventTemplate(text: text, parts: parts.map { part in
            guard case .placeholder(var placeholder) = part, placeholder.field == .tenant, placeholder.fallback == nil else { return part }
            placeholder.fallback = value
            return .placeholder(placeholder)
        })
    }
}
