import Logging
import SpillwayCore
import SpillwayPostgres

/// `kind: refresh`: refreshes the materialized views built from the tables a batch changed.
///
/// A batch marks its views stale; `deliver` refreshes each of them and returns only once those refreshes
/// completed, so the checkpoint never passes a change whose views do not show it yet. Debounce: a view is
/// refreshed at most once per `min_interval` (deliver waits out the rest of the interval since the
/// previous refresh started), never twice at once in this process (one connection, one refresh at a
/// time), and never at the same time as another Spillway process's refresh of it (a session advisory lock
/// per view, taken with pg_try_advisory_lock). `REFRESH ... CONCURRENTLY` when the view has a unique index
/// over plain columns (readers are not blocked), a plain refresh otherwise.
public actor RefreshSink: ChangeSinkValidating {
    public nonisolated let name: String
    /// As configured, then with discovered views added by `validate`.
    private var settings: RefreshSinkSettings
    private let url: String
    private let logger: Logger
    private var connection: PostgresConnection?
    private var lastStart: [QualifiedName: ContinuousClock.Instant] = [:]
    private var warnedPlain: Set<QualifiedName> = []
    private let clock = ContinuousClock()

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    /// What the catalog says about a view.
    struct ViewState {
        var isMaterializedView: Bool
        var isPopulated: Bool
        /// A valid unique index over plain columns, without WHERE: what CONCURRENTLY needs.
        var hasUniqueIndex: Bool
    }

    /// `url` is `settings.url`, or `database.url` when the sink names none.
    public init(name: String, settings: RefreshSinkSettings, url: String, logger: Logger) {
        self.name = name
        self.settings = settings
        self.url = url
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
    }

    /// Every configured view must exist and be a materialized view; `auto` entries are resolved here.
    public func validate(tables: [TableInfo]) async throws {
        let connection = try await connected()
        for (position, entry) in settings.views.enumerated() where entry.discoversViews {
            let found = try await Self.dependentViews(of: entry.table, on: connection)
            guard !found.isEmpty else {
                throw ConfigError(key: entry.configKey, problem: "`auto` found no materialized view built from \(entry.table)",
                                  fix: "create the view first, or list the views by name")
            }
            for view in found where !settings.views[position].views.contains(view) {
                settings.views[position].views.append(view)
            }
            logger.info("materialized views discovered", metadata: ["table": "\(entry.table)", "views": "\(found.map(\.description))"])
        }
        for entry in settings.views {
            for (index, view) in entry.views.enumerated() {
                guard let state = try await Self.state(of: view, on: connection) else {
                    throw ConfigError(key: "\(entry.configKey)[\(index)]", problem: "\(view) does not exist",
                                      fix: "create the materialized view, or remove it here")
                }
                guard state.isMaterializedView else {
                    throw ConfigError(key: "\(entry.configKey)[\(index)]", problem: "\(view) is not a materialized view",
                                      fix: "name materialized views only (plain views need no refresh)")
                }
                warnIfPlain(view, state)
            }
        }
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        for view in settings.views(affectedBy: batch) {
            try await refresh(view)
        }
    }

    public func close() async throws {
        await connection?.close()
        connection = nil
    }

    // MARK: Refreshing

    private func refresh(_ view: QualifiedName) async throws {
        if let last = lastStart[view] {
            let due = last + settings.minInterval
            if due > clock.now { try await Task.sleep(until: due, clock: clock) }
        }
        let connection = try await connected()
        let lockKey = "spillway-refresh:\(view)"
        do {
            var waitedSince: ContinuousClock.Instant?
            while try await connection.query("SELECT pg_try_advisory_lock(hashtext($1))", [lockKey]).first?[0] != "t" {
                // Another Spillway process is refreshing this view. Its refresh may have started before our
                // changes committed, so wait for it to finish, then refresh anyway.
                if waitedSince == nil {
                    waitedSince = clock.now
                    logger.debug("waiting for another process's refresh", metadata: ["view": "\(view)"])
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            do {
                guard let state = try await Self.state(of: view, on: connection), state.isMaterializedView else {
                    throw Error(description: "sink '\(name)': materialized view \(view) does not exist (any more)")
                }
                warnIfPlain(view, state)
                let concurrently = state.hasUniqueIndex && state.isPopulated
                let started = clock.now
                lastStart[view] = started
                try await connection.execute("REFRESH MATERIALIZED VIEW \(concurrently ? "CONCURRENTLY " : "")\(view.sql)")
                logger.debug("refreshed", metadata: ["view": "\(view)", "concurrently": "\(concurrently)",
                                                     "took": "\(clock.now - started)"])
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(hashtext($1))", [lockKey])
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(hashtext($1))", [lockKey])
        } catch {
            if let error = error as? PostgresError, error.isConnectionFailure || !connection.isHealthy {
                // The server released the session lock with the connection; start afresh on the retry.
                await connection.close()
                self.connection = nil
            }
            if error is Error { throw error }
            throw Error(description: "sink '\(name)': refreshing \(view) failed: \(error)")
        }
    }

    private func warnIfPlain(_ view: QualifiedName, _ state: ViewState) {
        guard !state.hasUniqueIndex, warnedPlain.insert(view).inserted else { return }
        logger.warning("materialized view has no unique index: refreshing it without CONCURRENTLY, which blocks its readers while it runs; add a unique index over plain columns to refresh concurrently", metadata: ["view": "\(view)"])
    }

    /// Materialized views whose query reads `table`, directly or through plain views (not through other
    /// materialized views: those read a snapshot, refreshed on its own schedule).
    static func dependentViews(of table: QualifiedName, on connection: PostgresConnection) async throws -> [QualifiedName] {
        let result = try await connection.query(
            """
            WITH RECURSIVE dependents(oid, relkind) AS (
                SELECT v.oid, v.relkind FROM pg_depend d
                JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                  AND d.refobjid = to_regclass($1) AND v.oid <> d.refobjid
              UNION
                SELECT v.oid, v.relkind FROM dependents
                JOIN pg_depend d ON d.refobjid = dependents.oid AND dependents.relkind = 'v'
                JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND v.oid <> d.refobjid
            )
            SELECT n.nspname, c.relname FROM dependents JOIN pg_class c ON c.oid = dependents.oid
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE dependents.relkind = 'm' ORDER BY 1, 2
            """, [table.sql])
        return result.rows.map { QualifiedName(schema: $0[0] ?? "", name: $0[1] ?? "") }
    }

    static func state(of view: QualifiedName, on connection: PostgresConnection) async throws -> ViewState? {
        let result = try await connection.query(
            """
            SELECT c.relkind = 'm', c.relispopulated,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
                           AND i.indpred IS NULL AND i.indexprs IS NULL)
            FROM pg_class c WHERE c.oid = to_regclass($1)
            """, [view.sql])
        guard let row = result.first else { return nil }
        return ViewState(isMaterializedView: row[0] == "t", isPopulated: row[1] == "t", hasUniqueIndex: row[2] == "t")
    }

    private func connected() async throws -> PostgresConnection {
        if let connection, connection.isHealthy { return connection }
        await connection?.close()
        connection = nil
        let fresh = try await PostgresConnection.connect(url: url, applicationName: "spillway-refresh")
        connection = fresh
        return fresh
    }
}
