/// One `source.outbox` entry: a table written by the application in the same transaction as its business
/// rows (the transactional outbox pattern). Each insert becomes an event with an `outbox` field; Kafka sinks
/// route it by `routeBy` ("Outbox router" in the README).
public struct OutboxTable: Sendable, Hashable {
    /// Required.
    public var table: QualifiedName
    /// The column whose text names the destination (`{route}`). Default: `aggregate_type`.
    public var routeBy: String
    /// The column whose text is the Kafka record key. Default: `aggregate_id`.
    public var key: String
    /// The column whose value is the Kafka record value (parsed JSON for json/jsonb, else text). Default: `payload`.
    public var payload: String
    /// Delete each row once every sink acknowledged it, in the checkpoint's own statement. Default: false.
    public var deleteAfter: Bool
    /// `source.outbox`, or `source.outbox[N]` in a list: the prefix of every error about this entry.
    public var configKey: String

    public init(table: QualifiedName, routeBy: String = "aggregate_type", key: String = "aggregate_id", payload: String = "payload",
                deleteAfter: Bool = false, configKey: String = "source.outbox") {
        self.table = table
        self.routeBy = routeBy
        self.key = key
        self.payload = payload
        self.deleteAfter = deleteAfter
        self.configKey = configKey
    }

    /// `source.outbox`: one mapping or a list of them.
    static func parse(_ r: inout ConfigReader) throws(ConfigError) -> [OutboxTable] {
        guard let node = r.node("outbox") else { return [] }
        let key = r.keyPath("outbox")
        var readers: [ConfigReader] = []
        if node.sequence != nil {
            guard let list = try r.children("outbox") else { return [] }
            readers = list
        } else if node.mapping != nil {
            guard let one = try r.child("outbox") else { return [] }
            readers = [one]
        } else {
            throw ConfigError(key: key, problem: "expected `{table: public.outbox, ...}` or a list of them",
                              fix: "write `outbox: {table: public.outbox, route_by: aggregate_type, key: aggregate_id, payload: payload}`")
        }
        var tables: [OutboxTable] = []
        for var entry in readers {
            let name = try entry.string("table", fix: "name the outbox table, e.g. `table: public.outbox`")
            guard let table = QualifiedName(parsing: name) else {
                throw ConfigError(key: entry.keyPath("table"), problem: "'\(name)' is not a table name", fix: "write schema.table, e.g. public.outbox")
            }
            var outbox = OutboxTable(table: table, configKey: entry.path)
            func column(_ name: String, default value: String) throws(ConfigError) -> String {
                guard let text = try entry.optionalString(name) else { return value }
                guard !text.isEmpty else {
                    throw ConfigError(key: entry.keyPath(name), problem: "is empty", fix: "name a column of \(table), or remove it for `\(value)`")
                }
                return text
            }
            outbox.routeBy = try column("route_by", default: outbox.routeBy)
            outbox.key = try column("key", default: outbox.key)
            outbox.payload = try column("payload", default: outbox.payload)
            outbox.deleteAfter = try entry.bool("delete_after", default: false)
            try entry.rejectUnknownKeys()
            if tables.contains(where: { $0.table == table }) {
                throw ConfigError(key: entry.keyPath("table"), problem: "outbox table \(table) is listed twice", fix: "keep one entry for it")
            }
            tables.append(outbox)
        }
        return tables
    }
}
