import Logging
import SpillwayCore

/// `kind: archive`: the replication source's retained log. Every event delivered to it is kept, as Spillway's
/// event JSON, in a table partitioned by day, so `spillway replay` can send a window of past changes again: a
/// replication slot cannot rewind, and the audit_log source has its audit table for that.
public struct ArchiveSinkSettings: Sendable {
    /// The database holding the archive. Default (nil): `database.url`.
    public var url: String?
    /// The partitioned table. Default: `spillway.archive`.
    public var table: QualifiedName
    /// How long events are kept; whole days, as partitions are dropped a day at a time. Default: 7 days.
    public var retention: Duration
    public var configKey: String

    public static let defaultTable = QualifiedName(schema: "spillway", name: "archive")
    public static let defaultRetention = Duration.seconds(7 * 86_400)

    public init(url: String? = nil, table: QualifiedName = defaultTable, retention: Duration = defaultRetention,
                configKey: String = "sinks[0]") {
        self.url = url
        self.table = table
        self.retention = retention
        self.configKey = configKey
    }

    /// The retention in whole days, at least 1.
    public var retentionDays: Int { max(1, Int(retention.components.seconds / 86_400)) }
}

extension ArchiveSinkSettings: SinkSettings {
    public static let kind = "archive"

    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> ArchiveSinkSettings {
        var settings = ArchiveSinkSettings(configKey: r.path)
        if let url = try r.optionalString("url") {
            settings.url = try EnvironmentSubstitution.substitute(url, environment: context.environment, key: r.keyPath("url"))
        }
        if let text = try r.optionalString("table") {
            guard let table = QualifiedName(parsing: text, defaultSchema: "spillway"), table.name.utf8.count <= 50 else {
                throw ConfigError(key: r.keyPath("table"), problem: "'\(text)' is not a table name of at most 50 bytes (its partitions add a day)",
                                  fix: "write schema.table, e.g. spillway.archive")
            }
            settings.table = table
        }
        if let text = try r.optionalString("retention") {
            guard text.hasSuffix("d"), let days = Int(text.dropLast()), (1...3650).contains(days) else {
                throw ConfigError(key: r.keyPath("retention"), problem: "'\(text)' is not a number of days from 1d to 3650d",
                                  fix: "write e.g. 7d: the archive is partitioned by day and dropped a day at a time")
            }
            settings.retention = .seconds(Int64(days) * 86_400)
        }
        return settings
    }

    public func validate(source: SourceConfig, filter: EventFilter, keyPath: String) throws(ConfigError) {
        guard source.kind == .replication else {
            throw ConfigError(key: "\(keyPath).kind", problem: "an archive sink is for the replication source; the audit_log source replays from its audit table",
                              fix: "remove this sink and set source.retention (e.g. 7d) to keep audit rows for replay")
        }
    }

    public func refusal(of format: EventFormat) -> (problem: String, fix: String)? {
        format == .spillway ? nil
            : ("an archive keeps Spillway's events, which replay sends to each sink in that sink's own format",
               "remove format from the archive sink")
    }

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        var logger = Logger(label: "spillway")
        logger[metadataKey: "sink"] = "\(context.name)"
        return ArchiveSink(name: context.name, consumer: context.consumer, store: ArchiveStore(table: table),
                           url: url ?? context.databaseURL, retentionDays: retentionDays, logger: logger)
    }
}
