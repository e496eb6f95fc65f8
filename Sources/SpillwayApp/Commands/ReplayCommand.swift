import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres

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
        guard config.source.kind == .auditLog else {
            throw ConfigError(key: "source.kind", problem: "replay reads the audit table; the replication source keeps no log of past "
                                + "changes yet (a slot cannot rewind, and the archive it needs is not built)",
                              fix: "rebuild from the tables with `spillway backfill`, or use the audit_log source where replay matters")
        }
        var config = config
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
        let window = try await checkedWindow(config: config, request: request, logger: logger)
        let routes = try await SinkFactory.makeRoutes(config)
        let chosen = config
        let progress = ReplayProgress()
        let pipeline = ChangePipeline(config: chosen, fanout: Fanout(routes: routes, logger: logger),
                                      options: PipelineOptions(once: true, isDetached: true), logger: logger) { _, _, logger in
            try await AuditLogReplaySource(config: chosen, window: window, table: table, progress: progress, logger: logger)
        }
        let group = ServiceGroup(configuration: .init(
            services: ServiceGroupConfiguration.ServiceConfiguration.consumer(pipeline: pipeline, routes: routes),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        return progress.events
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
            if config.source.prune || config.source.retention != nil, let oldest, try await reader.isEarlier(text, than: oldest.time) {
                throw ConfigError(key: "--since", problem: "\(text) is older than what is retained (source.prune or source.retention deletes delivered rows): \(horizon)",
                                  fix: "start at or after \(oldest.time)")
            }
        }
        return AuditLogReader.ReplayWindow(from: from, until: until)
    }
}
