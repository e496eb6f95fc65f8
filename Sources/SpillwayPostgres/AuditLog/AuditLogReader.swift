import Logging
import SpillwayCore

/// Events read from the audit table, and where the consumer stands once they are acknowledged.
public struct AuditLogBatch: Sendable {
    public var events: [ChangeEvent]
    /// Save this (after every sink acknowledged `events`) to move past them.
    public var cursor: AuditLogCursor
    /// Rows read, including rows of tables this consumer does not capture.
    public var rowsRead: Int
    /// True when this call finished a snapshot batch: with `rowsRead == 0`, the consumer has caught up.
    public var completedSnapshot: Bool = false
}

/// Reads the audit table between snapshots (see `PGSnapshot` and `AuditLogOrdering` for why this never
/// skips a late-committing transaction and keeps per-row commit order). Owns one connection: a batch is
/// read through a server-side cursor in a read transaction, and between batches the same connection
/// LISTENs for the wake trigger's NOTIFY.
public final class AuditLogReader: @unchecked Sendable {
    // @unchecked Sendable: used by one task at a time (the pipeline's loop); the connection serialises I/O.
    private let config: SpillwayConfig
    private let names: AuditLogSchema
    private let connection: PostgresConnection
    private let logger: Logger
    private var directory: TableDirectory
    private var hasCommitTimestamps = false
    /// The server-side cursor that is open, and the row it was last positioned after.
    private var openCursor: (batch: PGSnapshot, after: AuditLogOrdering?)?
    private static let cursorName = "spillway_batch"

    public static func open(config: SpillwayConfig, logger: Logger) async throws -> AuditLogReader {
        let connection = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-reader")
        do {
            let reader = AuditLogReader(config: config, connection: connection, logger: logger)
            try await reader.prepare()
            return reader
        } catch {
            await connection.close()
            throw error
        }
    }

    private init(config: SpillwayConfig, connection: PostgresConnection, logger: Logger) {
        self.config = config
        self.names = AuditLogSchema(config: config)
        self.connection = connection
        self.logger = logger
        self.directory = TableDirectory([])
    }

    private func prepare() async throws {
        try await PostgresCatalog.requireServerVersion(connection)
        guard try await PostgresCatalog.tableExists(names.auditTable, on: connection) else {
            throw ConfigError(key: "source.audit_table", problem: "audit table \(names.auditTable) does not exist",
                              fix: "run `spillway install --config FILE` first")
        }
        try await reloadTables()
        let setting = try await connection.query("SELECT current_setting('track_commit_timestamp')")
        hasCommitTimestamps = setting.first?[0] == "on"
        if !hasCommitTimestamps {
            logger.notice("track_commit_timestamp is off: commit_time shows the transaction's start time instead")
        }
        if config.source.notify {
            try await connection.execute("LISTEN \(SQLText.identifier(names.wakeChannel))")
        }
    }

    public func reloadTables() async throws {
        var tables: [TableInfo] = []
        for (index, table) in config.source.tables.enumerated() {
            guard try await PostgresCatalog.tableExists(table, on: connection) else {
                throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist",
                                  fix: "create it, or remove it from source.tables")
            }
            tables.append(try await PostgresCatalog.describe(table, on: connection))
        }
        directory = TableDirectory(tables)
    }

    public func close() async {
        await connection.close()
    }

    /// Waits for a NOTIFY from the wake trigger, or `timeout`; true when one arrived.
    public func waitForCommits(timeout: Duration) async throws -> Bool {
        guard config.source.notify else {
            try await Task.sleep(for: timeout)
            return false
        }
        return try await connection.waitForNotifications(timeout: timeout) > 0
    }

    /// Up to `limit` events after `cursor`, or nil when nothing new has committed since it.
    public func next(after cursor: AuditLogCursor, limit: Int) async throws -> AuditLogBatch? {
        if !cursor.isHistoryDone {
            return try await nextHistory(after: cursor, limit: limit)
        }
        var cursor = cursor
        if cursor.batch == nil {
            try await closeCursor()
            let result = try await connection.query("SELECT pg_current_snapshot()::text")
            guard let text = result.first?[0], let snapshot = PGSnapshot(text) else {
                throw PostgresError(message: "pg_current_snapshot() returned no snapshot")
            }
            if cursor.completed.hasSameVisibility(as: snapshot) { return nil }
            cursor.batch = snapshot
        }
        guard let batch = cursor.batch else { return nil }
        if let open = openCursor, open.batch == batch, open.after == cursor.batchProgress {
            // The open cursor is exactly where the consumer stands: keep reading it.
        } else {
            try await closeCursor()
            try await declareCursor(completed: cursor.completed, batch: batch, after: cursor.batchProgress)
        }
        let result = try await connection.query("FETCH FORWARD \(limit) FROM \(Self.cursorName)")
        var events: [ChangeEvent] = []
        events.reserveCapacity(result.rows.count)
        var last: AuditLogOrdering?
        for row in result.rows {
            let ordering = AuditLogOrdering(transactionRank: Int64(row[10] ?? "") ?? 0, sequence: Int64(row[1] ?? "") ?? 0)
            last = ordering
            if let event = try event(from: row) { events.append(event) }
        }
        if result.rows.count < limit {
            try await closeCursor()
            cursor.completeBatch()
        } else if let last {
            cursor.batchProgress = last
            openCursor = (batch, last)
        }
        return AuditLogBatch(events: events, cursor: cursor, rowsRead: result.rows.count,
                             completedSnapshot: cursor.batch == nil)
    }

    private var selectList: String {
        let commitTime = hasCommitTimestamps
            ? "coalesce(pg_xact_commit_timestamp(b.txid::xid), b.changed_at)" : "b.changed_at"
        return """
            b.txid::text, b.seq, b.id::text, b.schema_name, b.table_name, b.operation, b.old_data::text,
            b.new_data::text, b.tenant, to_char(\(commitTime) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            """
    }

    private func declareCursor(completed: PGSnapshot, batch: PGSnapshot, after: AuditLogOrdering?) async throws {
        try await connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
        do {
            // Transactions new in `batch`: those that were running at `completed`, and those that started after
            // it. Both range bounds are indexable; pg_visible_in_snapshot then drops the still-running ones.
            try await connection.query(
                """
                DECLARE \(Self.cursorName) NO SCROLL CURSOR FOR
                SELECT \(selectList), b.rank FROM (
                    SELECT a.*, max(a.seq) OVER (PARTITION BY a.txid) AS rank FROM \(names.auditTable.sql) a
                    WHERE ((a.txid >= $1::xid8 AND a.txid < $2::xid8) OR a.txid = ANY($3::xid8[]))
                      AND pg_visible_in_snapshot(a.txid, $4::pg_snapshot)
                ) b
                WHERE $5::bigint IS NULL OR (b.rank, b.seq) > ($5::bigint, $6::bigint)
                ORDER BY b.rank, b.seq
                """,
                [String(completed.xmax), String(batch.xmax),
                 "{" + completed.running.map(String.init).joined(separator: ",") + "}", batch.description,
                 after.map { String($0.transactionRank) }, after.map { String($0.sequence) }])
        } catch {
            try? await connection.execute("ROLLBACK")
            throw error
        }
        openCursor = (batch, after)
    }

    private func closeCursor() async throws {
        guard openCursor != nil else { return }
        openCursor = nil
        try await connection.execute("COMMIT")
    }

    private func nextHistory(after cursor: AuditLogCursor, limit: Int) async throws -> AuditLogBatch {
        let result = try await connection.query(
            """
            SELECT \(selectList), b.changed_at::text FROM \(names.auditTable.sql) b
            WHERE b.txid IS NULL AND ($1::timestamptz IS NULL OR (b.changed_at, b.id::text) > ($1::timestamptz, $2))
            ORDER BY b.changed_at, b.id::text
            LIMIT \(limit)
            """, [cursor.historyProgress?.changedAt, cursor.historyProgress?.id])
        var cursor = cursor
        var events: [ChangeEvent] = []
        for row in result.rows {
            if let event = try event(from: row) { events.append(event) }
            cursor.historyProgress = .init(changedAt: row[10] ?? "", id: row[2] ?? "")
        }
        if result.rows.count < limit {
            cursor.isHistoryDone = true
            logger.info("audit history delivered", metadata: ["audit_table": "\(names.auditTable)"])
        }
        return AuditLogBatch(events: events, cursor: cursor, rowsRead: result.rows.count)
    }

    /// Nil for rows of tables this consumer does not capture (an adopted audit table may log more).
    private func event(from row: [String?]) throws -> ChangeEvent? {
        let table = row[4] ?? ""
        guard directory.lookup(schema: row[3], table: table) != nil else { return nil }
        let stored = AuditLogEvents.Row(
            txid: row[0].flatMap { UInt64($0) }, sequence: row[1].flatMap { Int64($0) }, auditID: row[2] ?? "",
            schema: row[3], table: table, operation: row[5] ?? "", oldData: row[6], newData: row[7],
            tenant: row[8], commitTime: row[9])
        return try AuditLogEvents.event(from: stored, tables: directory)
    }
}
