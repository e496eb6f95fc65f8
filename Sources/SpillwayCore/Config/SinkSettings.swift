/// A sink kind as a plug-in: its settings type, which its own module defines, reads the sink's keys,
/// checks them against the rest of the config, and makes the sink. Adding a kind is its module plus one
/// line in the list the app passes to `SpillwayConfig.parse` (`SinkKinds.all` in SpillwayApp).
public protocol SinkSettings: Sendable {
    /// What `kind:` names, e.g. `kafka`.
    static var kind: String { get }

    /// Reads the sink's own keys (`name`, `kind`, `tables` and `ops` are read already; any key left unread is
    /// refused as unknown afterwards).
    static func parse(_ reader: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> Self

    /// Checks against the whole config, once every sink is read. Default: nothing to check.
    func validate(source: SourceConfig, filter: EventFilter, keyPath: String) throws(ConfigError)

    /// Checks that connect nowhere, which every command runs after loading the config (Kafka: librdkafka
    /// accepts the properties). Default: nothing to check.
    func validateOffline(keyPath: String) throws(ConfigError)

    /// Opens the sink. Connections may be made lazily, so an unreachable destination is retried by the
    /// pipeline rather than failing the start; a configuration the destination's library refuses throws.
    func makeSink(_ context: SinkContext) async throws -> any ChangeSink

    /// Why this sink cannot write events in `format` (`sinks[].format`), or nil when it can (then `makeSink`
    /// gets the format's encoder in `context.encoder`). Default: refused — the sink writes keys or
    /// notifications, not events.
    func refusal(of format: EventFormat) -> (problem: String, fix: String)?

    /// The settings with `{tenant}` in every template written as `value` where an event has none
    /// (`sinks[].tenant_fallback: {default: VALUE}`). Default: unchanged (the kind has no templates).
    func fillingMissingTenant(with value: String) -> Self
}

extension SinkSettings {
    public func validate(source: SourceConfig, filter: EventFilter, keyPath: String) throws(ConfigError) {}
    public func validateOffline(keyPath: String) throws(ConfigError) {}
    public func fillingMissingTenant(with value: String) -> Self { self }
    public func refusal(of format: EventFormat) -> (problem: String, fix: String)? {
        ("a \(Self.kind) sink writes keys or notifications, not events, so it has no format",
         "remove format; it applies to file, kafka and webhook sinks")
    }
}

/// What a sink's parser may need from the rest of the config.
public struct SinkParseContext: Sendable {
    public var consumer: String
    public var source: SourceConfig
    /// The sink's `tables` and `ops`.
    public var filter: EventFilter
    public var environment: [String: String]

    /// The captured tables this sink receives.
    public var tables: [QualifiedName] {
        filter.tables.isEmpty ? source.tables : source.tables.filter(filter.tables.contains)
    }
}

/// What a sink is made with.
public struct SinkContext: Sendable {
    public var name: String
    /// The source database (sinks that write to PostgreSQL default to it).
    public var databaseURL: String
    /// Spillway's schema (dead letters live there).
    public var schema: String
    public var consumer: String
    /// `sinks[i]`, for errors.
    public var keyPath: String
    /// Writes each event in the sink's `format` (sinks that write whole events). Default: Spillway's event.
    public var encoder: EventEncoder = .spillway

    public init(name: String, databaseURL: String, schema: String, consumer: String, keyPath: String) {
        self.name = name
        self.databaseURL = databaseURL
        self.schema = schema
        self.consumer = consumer
        self.keyPath = keyPath
    }
}

extension SourceConfig {
    /// For sinks that name tables of their own (Redis keys, refreshed views): each must be captured and pass
    /// the sink's `tables` filter, or it would silently never be acted on.
    public func checkNamedTables(_ named: [(table: QualifiedName, configKey: String)], filter: EventFilter,
                                 keyPath: String) throws(ConfigError) {
        for (table, configKey) in named {
            guard tables.contains(table) else {
                throw ConfigError(key: configKey, problem: "table \(table) is not captured (not in source.tables)",
                                  fix: "add \(table) to source.tables, or remove it here")
            }
            guard filter.tables.isEmpty || filter.tables.contains(table) else {
                throw ConfigError(key: configKey, problem: "table \(table) is not in \(keyPath).tables, so this sink never sees it",
                                  fix: "add \(table) to \(keyPath).tables, or remove it here")
            }
        }
    }
}
