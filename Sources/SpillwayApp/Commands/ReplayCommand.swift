import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres
import SpillwaySinks

/// `spillway replay`: delivers a window of retained changes again, with their original ids, to the sinks (or
/// one of them), through the one engine, beside the live consumer: its checkpoint and lock are not touched.
public enum ReplayCommand {
    public struct Request: Sendable {
        public var from: String?
        public var since: String?
        public var until: String?
        public var sink: String?
        public var table: String?

        public init(from: String?, since: String?, until: String?, sink: String?, table: String?) {
            self.from = from
            self.since = since
            self.until = until
            self.sink = sink
            self.table = table
        }
    }

    /// Runs the replay to its end; returns how many events every chosen sink acknowledged.
    public static func run(config: SpillwayConfig, request: Request, logger: Logger) async throws -> Int {
        var config = config
        // The replication source replays from its archive sink's table, which is not replayed into itself.
        let archive = config.sinks.first { $0.settings is ArchiveSinkSettings }
        if config.source.kind == .replication {
            guard archive != nil else {
                throw ConfigError(key: "sinks", problem: "replay of the replication source reads the archive sink's table, and this config has no "
                                    + "archive sink (a slot cannot rewind)",
                                  fix: "add `{name: archive, kind: archive, retention: 7d}` to sinks: changes delivered from then on can be replayed")
            }
            if let name = request.sink, config.sinks.contains(where: { $0.name == name && $0.settings is ArchiveSinkSettings }) {
                throw ConfigError(key: "--sink", problem: "'\(name)' is the archive that replay reads from",
                                  fix: "name another sink, or leave --sink out for all of them but the archive")
            }
            config.sinks.removeAll { $0.settings is ArchiveSinkSettings }
        }
        if let name = request.sink {
            guard let sink = config.sinks.first(where: { $0.name == name }) else {
                throw ConfigError(key: "--sink", problem: "no sink is named '\(name)'",
                                  fix: "use one of \(config.sinks.map(\.name).joined(separator: ", ")), or leave --sink out for all")
            }
            config.sinks = [sink]
        }
        let table = try request.table.map { text -> QualifiedName in
            guard let table = QualifiedName(parsing: text), config.source.tables.contains(table) else {
                throw ConfigError(key: "--table", problem: "'\(text)' is not one of source.tables",
                                  fix: "use one of \(config.source.tables.map(\.description).joined(separator: ", "))")
            }
            return table
        }
        if let archive, let settings = archive.settings as? ArchiveSinkSettings {
            return try await replayArchive(config: config, settings: settings, request: request, table: table, logger: logger)
        }
        let window = try await checkedWindow(config: config, request: request, logger: logger)
        let routes = try await SinkFactory.makeRoutes(config)
        let chosen = config
        let progress = ReplayProgress(start: ReplayPosition())
        let pipeline = ChangePipeline(config: chosen, fanout: Fanout(routes: routes, logger: logger),
                                      options: PipelineOptions(once: true, isDetached: true), logger: logger) { _, _, logger in
            try await AuditLogReplaySource(config: chosen, window: window, table: table, progress: progress, logger: logger)
        }
        try await run(pipeline, routes: routes, logger: logger)
        return progress.events
    }

    private static func run(_ pipeline: some Service, routes: [Fanout.Route], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(
            services: ServiceGroupConfiguration.ServiceConfiguration.consumer(pipeline: pipeline, routes: routes),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The replication source's replay: the window's archived events, through the same engine.
    private static func replayArchive(config: SpillwayConfig, settings: ArchiveSinkSettings, request: Request, table: QualifiedName?,
                                      logger: Logger) async throws -> Int {
        let url = settings.url ?? config.database.url
        let store = ArchiveStore(table: settings.table)
        let window = try await PostgresConnection.withConnection(url: url, applicationName: "spillway-replay") { connection in
            try await checkedArchiveWindow(store: store, consumer: config.consumer, request: request, table: table, on: connection)
        }
        let routes = try await SinkFactory.makeRoutes(config)
        let progress = ReplayProgress(start: ArchiveReplayPosition())
        let consumer = config.consumer
        let pipeline = ChangePipeline(config: config, fanout: Fanout(routes: routes, logger: logger),
                                      options: PipelineOptions(once: true, isDetached: true), logger: logger) { _, _, _ in
            try await ArchiveReplaySource(url: url, store: store, consumer: consumer, window: window, progress: progress)
        }
        try await run(pipeline, routes: routes, logger: logger)
        return progress.events
    }

    /// The archive window, once its bounds parse and its start is archived.
    private static func checkedArchiveWindow(store: ArchiveStore, consumer: String, request: Request, table: QualifiedName?,
                                             on connection: PostgresConnection) async throws -> ArchiveStore.Window {
        func bound(_ text: String, key: String) async throws -> ArchiveStore.Window.Bound {
            if let position = ArchiveStore.position(text) { return .position(lsn: position.lsn, ordinal: position.ordinal) }
            do {
                _ = try await connection.query("SELECT $1::timestamptz", [text])
            } catch is PostgresError {
                switch key {
                case "--from":
                    throw ConfigError(key: key, problem: "'\(text)' is not a replication position",
                                      fix: "write it as events show it, an LSN such as 0/19B3E10 (or 0/19B3E10:2), or use --since TIMESTAMP")
                case "--since":
                    throw ConfigError(key: key, problem: "'\(text)' is not a timestamp", fix: "write e.g. 2026-12-01T10:00:00Z")
                default:
                    throw ConfigError(key: key, problem: "'\(text)' is neither a replication position (an LSN such as 0/19B3E10) nor a timestamp",
                                      fix: "write a position as events show it, or e.g. 2026-12-01T10:00:00Z")
                }
            }
            return .time(text)
        }
        let from: ArchiveStore.Window.Bound
        switch (request.from, request.since) {
        case (let text?, nil):
            from = try await bound(text, key: "--from")
            guard case .position = from else {
                throw ConfigError(key: "--from", problem: "'\(text)' is not a replication position", fix: "write an LSN such as 0/19B3E10, or use --since TIMESTAMP")
            }
        case (nil, let text?):
            from = try await bound(text, key: "--since")
            guard case .time = from else {
                throw ConfigError(key: "--since", problem: "'\(text)' is not a timestamp", fix: "write e.g. 2026-12-01T10:00:00Z, or use --from POSITION")
            }
        default:
            throw ConfigError(key: "--from", problem: "give exactly one of --from POSITION and --since TIMESTAMP",
                              fix: "e.g. --since 2026-12-01T10:00:00Z")
        }
        var until: ArchiveStore.Window.Bound?
        if let text = request.until { until = try await bound(text, key: "--until") }
        guard try await store.exists(on: connection), let oldest = try await store.oldest(consumer: consumer, on: connection) else {
            throw ConfigError(key: "--from", problem: "the archive \(store.table) holds no change of consumer '\(consumer)'",
                              fix: "run the consumer with its archive sink first: changes delivered from then on can be replayed")
        }
        let horizon = "the oldest archived change is \(oldest.position) (committed \(oldest.time ?? "?"))"
        let isBeforeHorizon: Bool
        switch from {
        case .position(let lsn, _):
            let compared = try await connection.query("SELECT $1::pg_lsn < $2::pg_lsn", [lsn, oldest.lsn ?? lsn])
            isBeforeHorizon = compared.first?[0] == "t"
        case .time(let time):
            let compared = try await connection.query("SELECT $1::timestamptz < $2::timestamptz", [time, oldest.time ?? time])
            isBeforeHorizon = compared.first?[0] == "t"
        }
        if isBeforeHorizon {
            throw ConfigError(key: request.from != nil ? "--from" : "--since", problem: "the window starts before what is archived: \(horizon)",
                              fix: "start at or after it (--from \(oldest.lsn ?? "LSN") or --since \(oldest.time ?? "TIMESTAMP"))")
        }
        return ArchiveStore.Window(from: from, until: until, table: table,
                                   lastSequence: try await store.lastSequence(consumer: consumer, on: connection))
    }

    /// The window, once its bounds parse and its start is retained.
    private static func checkedWindow(config: SpillwayConfig, request: Request, logger: Logger) async throws -> AuditLogReader.ReplayWindow {
        func position(_ text: String, key: String) throws -> AuditLogReader.ReplayWindow.Bound? {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            guard let txid = UInt64(parts[0]), let sequence = Int64(parts[1]) else {
                throw ConfigError(key: key, problem: "'\(text)' is not an audit_log position", fix: "write it as events show it, TXID/SEQ (e.g. 7712/104)")
            }
            return .position(txid: txid, sequence: sequence)
        }
        let reader = try await AuditLogReader.open(config: config, logger: logger)
        do {
            let window = try await checkedWindow(reader: reader, config: config, request: request, position: position)
            await reader.close()
            return window
        } catch {
            await reader.close()
            throw error
        }
    }

    private static func checkedWindow(reader: AuditLogReader, config: SpillwayConfig, request: Request,
                                      position: (String, String) throws -> AuditLogReader.ReplayWindow.Bound?) async throws
        -> AuditLogReader.ReplayWindow {
        func time(_ text: String, key: String) async throws -> AuditLogReader.ReplayWindow.Bound {
            do {
                _ = try await reader.isEarlier(text, than: text)
            } catch is PostgresError {
                throw ConfigError(key: key, problem: "'\(text)' is not a timestamp", fix: "write e.g. 2026-12-01T10:00:00Z")
            }
            return .time(text)
        }
        let from: AuditLogReader.ReplayWindow.Bound
        switch (request.from, request.since) {
        case (let text?, nil):
            guard let bound = try position(text, "--from") else {
                throw ConfigError(key: "--from", problem: "'\(text)' is not an audit_log position",
                                  fix: "write it as events show it, TXID/SEQ (e.g. 7712/104), or use --since TIMESTAMP")
            }
            from = bound
        case (nil, let text?): from = try await time(text, key: "--since")
        default:
            throw ConfigError(key: "--from", problem: "give exactly one of --from POSITION and --since TIMESTAMP",
                              fix: "e.g. --since 2026-12-01T10:00:00Z")
        }
        var until: AuditLogReader.ReplayWindow.Bound?
        if let text = request.until {
            if let bound = try position(text, "--until") { until = bound } else { until = try await time(text, key: "--until") }
        }
        // A start the audit table no longer holds: the changes before the oldest retained one are gone.
        let oldest = try await reader.oldestRetained()
        let horizon = oldest.map { "the oldest retained change is \($0.position) (committed \($0.time))" } ?? "the audit table holds no change"
        switch from {
        case .position(let txid, let sequence):
            guard try await reader.isRetained(txid: txid, sequence: sequence) else {
                throw ConfigError(key: "--from", problem: "position \(txid)/\(sequence) is not retained: \(horizon)",
                                  fix: "start at or after it (--from \(oldest?.position ?? "TXID/SEQ") or --since \(oldest?.time ?? "TIMESTAMP"))")
            }
        case .time(let text):
            if config.source.deletesDeliveredRows, let oldest, try await reader.isEarlier(text, than: oldest.time) {
                throw ConfigError(key: "--since", problem: "\(text) is older than what is retained (source.prune or source.retention deletes delivered rows): \(horizon)",
                                  fix: "start at or after \(oldest.time)")
            }
        }
        return AuditLogReader.ReplayWindow(from: from, until: until)
    }
}
