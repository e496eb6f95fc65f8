import Logging
import SpillwayCore

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

extension RefreshSinkSettings: SinkSettings {
    public static let kind = "refresh"

    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> RefreshSinkSettings {
        let environment = context.environment
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

    /// A table that is never captured (or filtered out of this sink) would silently never refresh anything.
    public func validate(source: SourceConfig, filter: EventFilter, keyPath: String) throws(ConfigError) {
        try source.checkNamedTables(views.map { ($0.table, $0.configKey) }, filter: filter, keyPath: keyPath)
    }

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        RefreshSink(name: context.name, settings: self, url: url ?? context.databaseURL, logger: Logger(label: "spillway"))
    }
}

private func parseTableName(_ text: String, key: String) throws(ConfigError) -> QualifiedName {
    guard let name = QualifiedName(parsing: text) else {
        throw ConfigError(key: key, problem: "'\(text)' is not a table name", fix: "write schema.name, e.g. public.products")
    }
    return name
}
