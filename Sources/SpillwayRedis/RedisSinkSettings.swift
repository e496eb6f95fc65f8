import Logging
import SpillwayCore

/// `kind: redis`: invalidates (UNLINKs) the cache keys a change touches, or PUBLISHes the change.
public struct RedisSinkSettings: Sendable {
    public enum Action: String, Sendable, CaseIterable {
        /// UNLINK the keys rendered from `keys` (patterns: SCAN MATCH, then UNLINK).
        case del
        /// PUBLISH each event on `channel`.
        case publish
    }

    public enum Payload: String, Sendable, CaseIterable {
        /// The event's JSON.
        case event
        /// The event's `key` object as JSON (`null` for a table without primary key).
        case key
    }

    /// The key templates of one captured table.
    public struct TableKeys: Sendable {
        public var table: QualifiedName
        public var templates: [EventTemplate]
        /// Where they were configured, for errors: `sinks[0].keys.public.products`.
        public var configKey: String

        public init(table: QualifiedName, templates: [EventTemplate], configKey: String) {
            self.table = table
            self.templates = templates
            self.configKey = configKey
        }
    }

    /// Required. `${NAME}` parts were already replaced from the environment.
    public var url: RedisURL
    /// Table → key templates. Required for `del`; not allowed with `publish`.
    public var keys: [TableKeys]
    /// Default: del.
    public var action: Action
    /// `publish` only. Default: `spillway:{schema}.{table}`.
    public var channel: EventTemplate
    /// `publish` only. Default: event.
    public var payload: Payload
    /// Connect and per-command socket timeout. Default: 5s.
    public var timeout: Duration
    /// The COUNT hint of each SCAN of a key pattern, and the most keys per UNLINK. Default: 1000.
    public var scanCount: Int
    public var configKey: String

    public static let defaultChannel = try! EventTemplate(parsing: "spillway:{schema}.{table}")

    public init(url: RedisURL, keys: [TableKeys], action: Action = .del, channel: EventTemplate = defaultChannel,
                payload: Payload = .event, timeout: Duration = .seconds(5), scanCount: Int = 1000, configKey: String = "sinks[0]") {
        self.url = url
        self.keys = keys
        self.action = action
        self.channel = channel
        self.payload = payload
        self.timeout = timeout
        self.scanCount = scanCount
        self.configKey = configKey
    }

    /// The key templates for `table`, if any.
    public func templates(schema: String, table: String) -> [EventTemplate] {
        keys.first { $0.table.schema == schema && $0.table.name == table }?.templates ?? []
    }
}

extension RedisSinkSettings: SinkSettings {

    /// `tenant_fallback: {default: VALUE}`: keys, key patterns and the channel write VALUE for a missing tenant.
    public func fillingMissingTenant(with value: String) -> RedisSinkSettings {
        var settings = self
        settings.channel = channel.fillingMissingTenant(with: value)
        settings.keys = keys.map { entry in
            var entry = entry
            entry.templates = entry.templates.map { $0.fillingMissingTenant(with: value) }
            return entry
        }
        return settings
    }

    public static let kind = "redis"

    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> RedisSinkSettings {
        let environment = context.environment
        let urlText = try r.string("url", fix: "set url: redis://[:password@]host:port/db (a password may come from ${REDIS_PASSWORD})")
        let url = try RedisURL(parsing: urlText, environment: environment, key: r.keyPath("url"))
        let action: Action = try r.choice("action", default: .del)
        var settings = RedisSinkSettings(url: url, keys: [], action: action, configKey: r.path)
        if let lists = try r.listMap("keys") {
            guard action == .del else {
                throw ConfigError(key: r.keyPath("keys"), problem: "is only used with action: del",
                                  fix: "remove keys, or use a second sink with action: del")
            }
            for entry in lists {
                let table = try parseTableName(entry.key, key: entry.path)
                guard !entry.values.isEmpty else {
                    throw ConfigError(key: entry.path, problem: "lists no key template",
                                      fix: "list keys such as [\"product:{key.id}\"], or remove the table")
                }
                var templates: [EventTemplate] = []
                for (index, text) in entry.values.enumerated() {
                    templates.append(try template(text, key: "\(entry.path)[\(index)]", use: .cacheKey))
                }
                settings.keys.append(TableKeys(table: table, templates: templates, configKey: entry.path))
            }
        }
        if action == .del, settings.keys.isEmpty {
            throw ConfigError(key: r.keyPath("keys"), problem: "is required with action: del",
                              fix: "map each table to its key templates, e.g. `keys: {public.products: [\"product:{key.id}\"]}`")
        }
        if let channel = try r.optionalString("channel") {
            guard action == .publish else {
                throw ConfigError(key: r.keyPath("channel"), problem: "is only used with action: publish",
                                  fix: "remove channel, or set action: publish")
            }
            settings.channel = try template(channel, key: r.keyPath("channel"), use: .channel)
        }
        if r.has("payload"), action != .publish {
            throw ConfigError(key: r.keyPath("payload"), problem: "is only used with action: publish",
                              fix: "remove payload, or set action: publish")
        }
        settings.payload = try r.choice("payload", default: settings.payload)
        settings.timeout = try r.duration("timeout", default: settings.timeout)
        guard settings.timeout >= .milliseconds(10) else {
            throw ConfigError(key: r.keyPath("timeout"), problem: "is below 10ms", fix: "use 10ms or more, e.g. 5s")
        }
        settings.scanCount = try r.int("scan_count", default: settings.scanCount, range: 1...100_000)
        return settings
    }

    /// A table that is never captured (or filtered out of this sink) would silently never invalidate anything.
    public func validate(source: SourceConfig, filter: EventFilter, keyPath: String) throws(ConfigError) {
        try source.checkNamedTables(keys.map { ($0.table, $0.configKey) }, filter: filter, keyPath: keyPath)
    }

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        RedisSink(name: context.name, settings: self, logger: Logger(label: "spillway"))
    }
}

private func template(_ text: String, key: String, use: EventTemplate.Use) throws(ConfigError) -> EventTemplate {
    try EventTemplate(parsing: text, key: key, use: use)
}

private func parseTableName(_ text: String, key: String) throws(ConfigError) -> QualifiedName {
    guard let name = QualifiedName(parsing: text) else {
        throw ConfigError(key: key, problem: "'\(text)' is not a table name", fix: "write schema.name, e.g. public.products")
    }
    return name
}
