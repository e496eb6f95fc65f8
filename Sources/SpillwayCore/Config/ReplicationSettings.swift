/// `source.*` keys of the replication source.
public struct ReplicationSettings: Sendable {
    /// The logical replication slot. Default: `spillway_<consumer>`.
    public var slot: String = ""
    /// The publication; created by `install` for `source.tables` unless it exists. Default: `spillway_<consumer>`.
    public var publication: String = ""
    /// How often an idle source emits a logical message so the slot's confirmed position keeps moving and
    /// retained WAL stays bounded. Default: 10s. `0s` turns it off.
    public var heartbeat: Duration = .seconds(10)
    /// `status` warns when the slot retains more WAL than this. Default: 1 GiB.
    public var maxRetainedWALBytes: Int64 = 1 << 30
    /// A column naming the tenant, for all tables (WAL has no session settings). Default: none.
    public var tenantColumn: String?
    /// Per-table tenant columns, `schema.table: column`.
    public var tenantColumns: [String: String] = [:]
    /// Deliver `pg_logical_emit_message` messages as `op: message` events. Default: true.
    public var messages: Bool = true

    public init() {}

    static let keys = ["slot", "publication", "heartbeat", "max_retained_wal", "tenant_column", "tenant_columns", "messages"]

    mutating func applyDefaults(consumer: String) {
        let base = "spillway_" + String(consumer.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }).prefix(50)
        if slot.isEmpty { slot = base }
        if publication.isEmpty { publication = base }
    }

    static func parse(_ r: inout ConfigReader, tables: [QualifiedName]) throws(ConfigError) -> ReplicationSettings {
        var settings = ReplicationSettings()
        if let slot = try r.optionalString("slot") {
            guard slot.allSatisfy({ ($0.isLetter && $0.isLowercase) || $0.isNumber || $0 == "_" }), slot.count <= 63 else {
                throw ConfigError(key: r.keyPath("slot"), problem: "'\(slot)' is not a valid slot name",
                                  fix: "use lower-case letters, digits and _ (at most 63)")
            }
            settings.slot = slot
        }
        settings.publication = try r.optionalString("publication") ?? ""
        settings.heartbeat = try r.duration("heartbeat", default: settings.heartbeat)
        if let size = try r.optionalString("max_retained_wal") {
            guard let bytes = ByteSize.parse(size) else {
                throw ConfigError(key: r.keyPath("max_retained_wal"), problem: "'\(size)' is not a size",
                                  fix: "write a number with a unit: 512MB, 2GB")
            }
            settings.maxRetainedWALBytes = bytes
        }
        settings.tenantColumn = try r.optionalString("tenant_column")
        if let pairs = try r.stringMap("tenant_columns") {
            for (table, column) in pairs {
                guard let name = QualifiedName(parsing: table), tables.contains(name) else {
                    throw ConfigError(key: r.keyPath("tenant_columns.\(table)"), problem: "'\(table)' is not one of source.tables",
                                      fix: "name a captured table, schema.table")
                }
                settings.tenantColumns[name.description] = column
            }
        }
        settings.messages = try r.bool("messages", default: settings.messages)
        return settings
    }
}

/// `512MB`, `2GB`, `1024` (bytes); binary units.
public enum ByteSize {
    public static func parse(_ text: String) -> Int64? {
        let upper = text.uppercased().replacingOccurrences(of: " ", with: "")
        let units: [(String, Int64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)]
        for (suffix, scale) in units where upper.hasSuffix(suffix) {
            guard let number = Int64(upper.dropLast(suffix.count)), number >= 0, number <= Int64.max / scale else { return nil }
            return number * scale
        }
        return Int64(upper).flatMap { $0 >= 0 ? $0 : nil }
    }
}
