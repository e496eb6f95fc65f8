import Yams

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

/// `kind: notify`: `pg_notify(channel, payload)` on a PostgreSQL database, a batch per transaction.
public struct NotifySinkSettings: Sendable {
    /// The database to notify on. Default (nil): `database.url`.
    public var url: String?
    /// Default: `spillway_{table}`. Must render to at most 63 bytes (PostgreSQL's identifier limit).
    public var channel: EventTemplate
    public var configKey: String

    public static let defaultChannel = try! EventTemplate(parsing: "spillway_{table}")

    public init(url: String? = nil, channel: EventTemplate = defaultChannel, configKey: String = "sinks[0]") {
        self.url = url
        self.channel = channel
        self.configKey = configKey
    }
}

/// `kind: refresh`: refreshes the materialized views that depend on a changed table, debounced.
public struct RefreshSinkSettings: Sendable {
    public struct TableViews: Sendable {
        public var table: QualifiedName
        public var views: [QualifiedName]
        /// `auto` was listed: add the materialized views that depend on the table (directly or through
        /// plain views), found in the catalog at start-up.
        public var discoversViews: Bool
        public var configKey: String

        public init(table: QualifiedName, views: [QualifiedName], discoversViews: Bool = false, configKey: String) {
            self.table = table
            self.views = views
            self.discoversViews = discoversViews
            self.configKey = configKey
        }
    }

    /// The database holding the views. Default (nil): `database.url`.
    public var url: String?
    /// Table → materialized views to refresh when it changes (`auto` among them: discover them). Required.
    public var views: [TableViews]
    /// Refresh each view at most once per this interval. Default: 1s.
    public var minInterval: Duration
    public var configKey: String

    public init(url: String? = nil, views: [TableViews], minInterval: Duration = .seconds(1), configKey: String = "sinks[0]") {
        self.url = url
        self.views = views
        self.minInterval = minInterval
        self.configKey = configKey
    }

    /// Every configured view, each once, in configuration order.
    public var allViews: [QualifiedName] {
        var seen: Set<QualifiedName> = []
        return views.flatMap(\.views).filter { seen.insert($0).inserted }
    }

    /// The views `events` make stale, each once.
    public func views(affectedBy events: some Sequence<ChangeEvent>) -> [QualifiedName] {
        var tables: Set<QualifiedName> = []
        for event in events where event.op != .message {
            tables.insert(QualifiedName(schema: event.schema, name: event.table))
        }
        var seen: Set<QualifiedName> = []
        return views.filter { tables.contains($0.table) }.flatMap(\.views).filter { seen.insert($0).inserted }
    }
}

// MARK: Parsing

extension RedisSinkSettings {
    static func parse(_ r: inout ConfigReader, environment: [String: String]) throws(ConfigError) -> RedisSinkSettings {
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
}

extension NotifySinkSettings {
    static func parse(_ r: inout ConfigReader, environment: [String: String]) throws(ConfigError) -> NotifySinkSettings {
        var settings = NotifySinkSettings(configKey: r.path)
        if let url = try r.optionalString("url") {
            settings.url = try EnvironmentSubstitution.substitute(url, environment: environment, key: r.keyPath("url"))
        }
        if let channel = try r.optionalString("channel") {
            settings.channel = try template(channel, key: r.keyPath("channel"), use: .channel)
            if settings.channel.fields.isEmpty, channel.utf8.count > 63 {
                throw ConfigError(key: r.keyPath("channel"), problem: "is longer than 63 bytes, PostgreSQL's limit for a channel",
                                  fix: "use a shorter channel name")
            }
        }
        return settings
    }
}

extension RefreshSinkSettings {
    static func parse(_ r: inout ConfigReader, environment: [String: String]) throws(ConfigError) -> RefreshSinkSettings {
        var settings = RefreshSinkSettings(views: [], configKey: r.path)
        if let url = try r.optionalString("url") {
            settings.url = try EnvironmentSubstitution.substitute(url, environment: environment, key: r.keyPath("url"))
        }
        guard let lists = try r.listMap("views"), !lists.isEmpty else {
            throw ConfigError(key: r.keyPath("views"), problem: "is required",
                              fix: "map each table to the materialized views built from it, e.g. `views: {public.events: [public.event_counts]}`, or to `auto`")
        }
        for entry in lists {
            let table = try parseTableName(entry.key, key: entry.path)
            guard !entry.values.isEmpty else {
                throw ConfigError(key: entry.path, problem: "lists no materialized view", fix: "list views, or remove the table")
            }
            var views: [QualifiedName] = []
            var discovers = false
            for (index, text) in entry.values.enumerated() {
                if text == "auto" {
                    discovers = true
                    continue
                }
                let view = try parseTableName(text, key: "\(entry.path)[\(index)]")
                if !views.contains(view) { views.append(view) }
            }
            settings.views.append(TableViews(table: table, views: views, discoversViews: discovers, configKey: entry.path))
        }
        settings.minInterval = try r.duration("min_interval", default: settings.minInterval)
        return settings
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

extension ConfigReader {
    /// A mapping of names to lists (or single values), e.g. `keys: {public.products: [a, b]}`; each entry
    /// with its key path for errors.
    mutating func listMap(_ key: String) throws(ConfigError) -> [(key: String, values: [String], path: String)]? {
        guard let node = node(key) else { return nil }
        guard let mapping = node.mapping else {
            throw ConfigError(key: keyPath(key), problem: "expected a mapping of table names to lists",
                              fix: "write `\(key): {public.products: [...]}`")
        }
        var entries: [(key: String, values: [String], path: String)] = []
        for (name, value) in mapping {
            guard let entryName = name.string else {
                throw ConfigError(key: keyPath(key), problem: "a key is not a plain string", fix: "use table names as keys")
            }
            let path = "\(keyPath(key)).\(entryName)"
            if entries.contains(where: { $0.key == entryName }) {
                throw ConfigError(key: path, problem: "appears twice", fix: "merge the two lists")
            }
            if let scalar = value.scalar {
                entries.append((entryName, scalar.string.isEmpty ? [] : [scalar.string], path))
            } else if let sequence = value.sequence {
                var items: [String] = []
                for (index, item) in sequence.enumerated() {
                    guard let text = item.scalar?.string else {
                        throw ConfigError(key: "\(path)[\(index)]", problem: "expected a plain value", fix: "list plain values")
                    }
                    items.append(text)
                }
                entries.append((entryName, items, path))
            } else {
                throw ConfigError(key: path, problem: "expected a list", fix: "write `\(entryName): [a, b]`")
            }
        }
        return entries
    }
}

// MARK: Checks against the source

extension SinkConfig {
    /// Checks the tables a cache sink names against the captured tables (and the sink's own `tables`
    /// filter): a table that is never captured would silently never invalidate anything.
    func validate(source: SourceConfig, keyPath: String) throws(ConfigError) {
        let named: [(table: QualifiedName, configKey: String)]
        switch settings {
        case .redis(let redis): named = redis.keys.map { ($0.table, $0.configKey) }
        case .refresh(let refresh): named = refresh.views.map { ($0.table, $0.configKey) }
        default: named = []
        }
        for (table, configKey) in named {
            guard source.tables.contains(table) else {
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

extension EventTemplate {
    /// Checks every row field against the tables the sink receives; the error names `key`.
    public func validate(against tables: [TableInfo], key: String) throws(ConfigError) {
        for table in tables {
            if let problem = problem(with: table) {
                throw ConfigError(key: key, problem: problem,
                                  fix: "correct the template, or narrow the sink's `tables` to tables that have the column")
            }
        }
    }
}
