import SpillwayCore

/// A consumer's row in `<schema>.checkpoints`, as `status` shows it.
public struct CheckpointRecord: Sendable {
    public var consumer: String
    public var source: String
    public var auditTable: String?
    public var position: String?
    public var cursor: AuditLogCursor
    public var eventsTotal: Int64
    public var updatedAt: String?
    public var lastError: String?
    public var lastErrorAt: String?
    /// The replication source's acknowledged position.
    public var replicationPosition: ReplicationPosition
    /// The table snapshot's progress (`snapshot_progress`), nil when none was asked for.
    public var snapshot: SnapshotProgress?

    public init(consumer: String, source: String, auditTable: String? = nil, position: String? = nil, cursor: AuditLogCursor,
                eventsTotal: Int64, updatedAt: String? = nil, lastError: String? = nil, lastErrorAt: String? = nil,
                replicationPosition: ReplicationPosition, snapshot: SnapshotProgress? = nil) {
        self.consumer = consumer
        self.source = source
        self.auditTable = auditTable
        self.position = position
        self.cursor = cursor
        self.eventsTotal = eventsTotal
        self.updatedAt = updatedAt
        self.lastError = lastError
        self.lastErrorAt = lastErrorAt
        self.replicationPosition = replicationPosition
        self.snapshot = snapshot
    }
}

/// Reads and writes checkpoints. The pipeline calls `save` only after every sink acknowledged the events
/// before the new position, so a crash replays from the last acknowledged batch, never past it. A save
/// that delivered events clears `last_error`; one that only moves past empty snapshots or heartbeats keeps
/// it, so a sink's failure stays visible while it lasts.
public struct CheckpointStore: Sendable {
    public let table: String

    public init(schema: String) {
        table = "\(SQLText.identifier(schema)).checkpoints"
    }

    /// The session-level advisory lock (`pg_advisory_lock(hashtext(name))`) the active runner of a consumer
    /// holds on its control connection; it goes with that session (a crash, a kill -9, a cut connection).
    public static func lockName(consumer: String) -> String { "spillway-consumer:\(consumer)" }

    /// True when this very session holds the consumer's lock (`$N` is the lock name). A save carries it in
    /// its WHERE: a runner whose lock is gone (its session replaced, the lock released) moves no checkpoint,
    /// so two runners of one consumer never both write, whatever their connections did.
    static func holdsLock(parameter: Int) -> String {
        // A bigint advisory key is stored as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
        """
        EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
                AND ((classid::bigint << 32) | objid::bigint) = hashtext($\(parameter))::bigint)
        """
    }

    /// Zero rows updated: the row is gone, or this session lost the consumer's lock.
    private func saveFailed(consumer: String, on connection: PostgresConnection) async throws -> any Error {
        let exists = try await connection.query("SELECT 1 FROM \(table) WHERE consumer = $1", [consumer])
        if exists.rows.isEmpty {
            return PostgresError(message: "consumer '\(consumer)' has no row in \(table): it was removed while running; run `spillway install` again")
        }
        return ConsumerLockLost(consumer: consumer)
    }

    /// Creates the consumer's row if it has none; an existing row (and its position) is left alone.
    public func register(consumer: String, auditTable: QualifiedName, cursor: AuditLogCursor,
                         on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO \(table) (consumer, source, audit_table, snapshot, history_done)
            VALUES ($1, 'audit_log', $2, $3::pg_snapshot, $4::boolean)
            ON CONFLICT (consumer) DO NOTHING
            """, [consumer, auditTable.description, cursor.completed.description, cursor.isHistoryDone ? "true" : "false"])
    }

    /// Asks for a table snapshot (`source.snapshot: initial`) unless the consumer already has one, running or
    /// done: `install` run again never starts it over. True when this asked for it.
    @discardableResult
    public func requestSnapshot(consumer: String, progress: SnapshotProgress, on connection: PostgresConnection) async throws -> Bool {
        let result = try await connection.query(
            "UPDATE \(table) SET snapshot_progress = $2::jsonb WHERE consumer = $1 AND snapshot_progress IS NULL",
            [consumer, JSONEncoding.string(progress.json)])
        return result.affectedRows == 1
    }

    public func load(consumer: String, on connection: PostgresConnection) async throws -> CheckpointRecord? {
        let result = try await connection.query(
            """
            SELECT consumer, source, audit_table, position, snapshot::text, batch_snapshot::text, batch_rank, batch_seq,
                   history_done, history_changed_at::text, history_id, events_total,
                   to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), last_error,
                   to_char(last_error_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), lsn::text,
                   to_jsonb(c) ->> 'snapshot_progress'
            FROM \(table) c WHERE consumer = $1
            """, [consumer])
        guard let row = result.first else { return nil }
        return Self.record(from: row)
    }

    public func loadAll(on connection: PostgresConnection) async throws -> [CheckpointRecord] {
        let result = try await connection.query(
            """
            SELECT consumer, source, audit_table, position, snapshot::text, batch_snapshot::text, batch_rank, batch_seq,
                   history_done, history_changed_at::text, history_id, events_total,
                   to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), last_error,
                   to_char(last_error_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), lsn::text,
                   to_jsonb(c) ->> 'snapshot_progress'
            FROM \(table) c ORDER BY consumer
            """)
        return result.rows.map(Self.record(from:))
    }

    private static func record(from row: [String?]) -> CheckpointRecord {
        var cursor = AuditLogCursor(completed: row[4].flatMap(PGSnapshot.init) ?? .origin,
                                    batch: row[5].flatMap(PGSnapshot.init),
                                    isHistoryDone: row[8] == "t")
        if cursor.batch != nil, let rank = row[6].flatMap({ Int64($0) }), let seq = row[7].flatMap({ Int64($0) }) {
            cursor.batchProgress = AuditLogOrdering(transactionRank: rank, sequence: seq)
        }
        if let changedAt = row[9], let id = row[10] {
            cursor.historyProgress = .init(changedAt: changedAt, id: id)
        }
        // Kept once done: `status` shows what the snapshot read.
        let snapshot = row[16].flatMap { SnapshotProgress(json: $0) }
        cursor.snapshot = snapshot
        return CheckpointRecord(consumer: row[0] ?? "", source: row[1] ?? "", auditTable: row[2], position: row[3],
                                cursor: cursor, eventsTotal: Int64(row[11] ?? "0") ?? 0, updatedAt: row[12],
                                lastError: row[13], lastErrorAt: row[14],
                                replicationPosition: ReplicationPosition(
                                    commitLSN: row[15].flatMap { LSN(string: $0) } ?? .zero,
                                    index: row[15] == nil ? nil : row[7].flatMap { Int($0) }, snapshot: snapshot),
                                snapshot: snapshot)
    }

    /// The SET clause that saves the snapshot's progress with the position, in the same statement (`$N`);
    /// empty when no snapshot runs, so a schema from before `snapshot_progress` keeps working.
    private static func snapshotAssignment(_ progress: SnapshotProgress?, parameter: Int) -> (sql: String, value: [String?]) {
        guard let progress else { return ("", []) }
        return (", snapshot_progress = $\(parameter)::jsonb", [JSONEncoding.string(progress.json)])
    }

    /// Moves the consumer to `cursor`. `position` is the last acknowledged event's position (kept when nil).
    /// Returns the id of the save's transaction when it wrote nothing but the checkpoint row (no outbox rows
    /// deleted): the audit_log reader knows such a commit added no audit row (`AuditLogReader.noteOwnTransaction`).
    @discardableResult
    public func save(consumer: String, cursor: AuditLogCursor, position: String?, deliveredEvents: Int,
                     deletingOutboxRows outboxRows: [OutboxRow] = [], on connection: PostgresConnection) async throws -> UInt64? {
        let snapshot = Self.snapshotAssignment(cursor.snapshot, parameter: 12)
        let returningXID = outboxRows.isEmpty ? " RETURNING pg_current_xact_id()::text" : ""
        let (affected, xid) = try await Self.updateReturningXID(
            """
            UPDATE \(table) SET snapshot = $2::pg_snapshot, batch_snapshot = $3::pg_snapshot, batch_rank = $4::bigint,
                batch_seq = $5::bigint, history_done = $6::boolean, history_changed_at = $7::timestamptz, history_id = $8,
                position = coalesce($9, position), events_total = events_total + $10::bigint, updated_at = now(),
                last_error = CASE WHEN $10::bigint > 0 THEN NULL ELSE last_error END,
                last_error_at = CASE WHEN $10::bigint > 0 THEN NULL ELSE last_error_at END\(snapshot.sql)
            WHERE consumer = $1 AND \(Self.holdsLock(parameter: 11))\(returningXID)
            """,
            [consumer, cursor.completed.description, cursor.batch?.description,
             cursor.batchProgress.map { String($0.transactionRank) }, cursor.batchProgress.map { String($0.sequence) },
             cursor.isHistoryDone ? "true" : "false", cursor.historyProgress?.changedAt, cursor.historyProgress?.id,
             position, String(deliveredEvents), Self.lockName(consumer: consumer)] + snapshot.value,
            deleting: outboxRows, on: connection)
        guard affected == 1 else { throw try await saveFailed(consumer: consumer, on: connection) }
        return xid
    }

    /// Runs a checkpoint UPDATE; returns the rows it updated. With `outboxRows` (`source.outbox.delete_after`)
    /// the UPDATE becomes a CTE and the rows are deleted in the same statement, only when it updated the
    /// checkpoint: a row goes exactly with the save that covers its event, so a crash before the save
    /// leaves both, and a runner that lost the lock deletes nothing.
    private static func update(_ sql: String, _ parameters: [String?], deleting outboxRows: [OutboxRow],
                               on connection: PostgresConnection) async throws -> Int {
        try await updateReturningXID(sql, parameters, deleting: outboxRows, on: connection).affected
    }

    /// The same; a statement with a `RETURNING` of one transaction-id column also gives that id.
    private static func updateReturningXID(_ sql: String, _ parameters: [String?], deleting outboxRows: [OutboxRow],
                               on connection: PostgresConnection) async throws -> (affected: Int, xid: UInt64?) {
        guard !outboxRows.isEmpty else {
            let result = try await connection.query(sql, parameters)
            return (result.affectedRows, result.first?.first.flatMap { $0 }.flatMap { UInt64($0) })
        }
        let deletions = OutboxCatalog.deletions(outboxRows, firstParameter: parameters.count + 1)
        let result = try await connection.query("WITH saved AS (\(sql) RETURNING 1)\(deletions.sql) SELECT count(*) FROM saved",
                                                parameters + deletions.values)
        return (Int(result.first?[0] ?? "0") ?? 0, nil)
    }

    /// Creates a replication consumer's row if it has none.
    public func registerReplication(consumer: String, slot: String, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO \(table) (consumer, source, audit_table, history_done)
            VALUES ($1, 'replication', $2, true)
            ON CONFLICT (consumer) DO NOTHING
            """, [consumer, "slot:\(slot)"])
    }

    /// Moves a replication consumer to `position` (`batch_seq` holds the index within a partly delivered
    /// transaction).
    public func save(consumer: String, position: ReplicationPosition, lastEventPosition: String?, deliveredEvents: Int,
                     deletingOutboxRows outboxRows: [OutboxRow] = [], on connection: PostgresConnection) async throws {
        let snapshot = Self.snapshotAssignment(position.snapshot, parameter: 7)
        let affected = try await Self.update(
            """
            UPDATE \(table) SET lsn = $2::pg_lsn, batch_seq = $3::bigint, position = coalesce($4, position),
                events_total = events_total + $5::bigint, updated_at = now(),
                last_error = CASE WHEN $5::bigint > 0 THEN NULL ELSE last_error END,
                last_error_at = CASE WHEN $5::bigint > 0 THEN NULL ELSE last_error_at END\(snapshot.sql)
            WHERE consumer = $1 AND \(Self.holdsLock(parameter: 6))
            """, [consumer, position.commitLSN.description, position.index.map(String.init), lastEventPosition, String(deliveredEvents),
                  Self.lockName(consumer: consumer)] + snapshot.value,
            deleting: outboxRows, on: connection)
        guard affected == 1 else { throw try await saveFailed(consumer: consumer, on: connection) }
    }

    /// Records why the consumer is stuck, for `status`. Best effort: the caller is already handling an error.
    public func recordError(consumer: String, message: String, on connection: PostgresConnection) async {
        _ = try? await connection.query(
            "UPDATE \(table) SET last_error = $2, last_error_at = now() WHERE consumer = $1", [consumer, message])
    }

    /// Rewinds the consumer to the start of the audit table (`spillway reset`). For a replication consumer
    /// the slot decides: it replays only what it has not confirmed.
    public func reset(consumer: String, includingHistory: Bool, on connection: PostgresConnection) async throws -> Bool {
        let result = try await connection.query(
            """
            UPDATE \(table) SET snapshot = $2::pg_snapshot, batch_snapshot = NULL, batch_rank = NULL, batch_seq = NULL,
                history_done = $3::boolean, history_changed_at = NULL, history_id = NULL, position = NULL, lsn = NULL,
                updated_at = now()
            WHERE consumer = $1
            """, [consumer, PGSnapshot.origin.description, includingHistory ? "false" : "true"])
        return result.affectedRows == 1
    }
}

/// A save found that its session no longer holds the consumer's lock: another runner may be active. The
/// session ends without moving the checkpoint and starts over (as a standby if the lock is taken).
public struct ConsumerLockLost: Error, CustomStringConvertible {
    public let consumer: String
    public var description: String {
        "this runner no longer holds consumer '\(consumer)''s lock (another may be active): the checkpoint was not moved"
    }
}
