import Logging
import SpillwayCore
import Synchronization

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
    // `noteOwnTransaction` is the exception: the checkpointer calls it, under `ownTransactions`' Mutex.
    private let config: SpillwayConfig
    private let names: AuditLogSchema
    private let connection: PostgresConnection
    private let logger: Logger
    private var directory: TableDirectory
    /// `schema.table` names of audit rows already looked up in the catalog (see `resolveUnknownNames`).
    private var resolvedNames: Set<String> = []
    /// `catalogFingerprint()` when the table descriptions were read.
    private var loadedFingerprint: String?
    private var hasCommitTimestamps = false
    /// Each captured table's OID when its description was read: a table that no longer resolves to it was
    /// dropped, renamed or re-created.
    private var capturedOIDs: [QualifiedName: String] = [:]
    /// Set when a captured table went while `run` streamed: the snapshot batch read after that is delivered
    /// (it holds every change committed before the table went), then `next` throws this.
    private var tableGone: FatalSourceError?
    /// The server-side cursor that is open, and the row it was last positioned after.
    private var openCursor: (batch: PGSnapshot, after: AuditLogOrdering?)?
    /// A FETCH of the open cursor's next rows was sent ahead (`send`) and its rows are not collected yet. Set
    /// only while `openCursor` stands where that FETCH starts; anything else first closes the cursor.
    private var pendingFetch = false
    private static let cursorName = "spillway_batch"
    /// `source.snapshot`: the chunk read with the open batch's snapshot, emitted once that batch is complete,
    /// so it follows every change it shows and precedes every change it does not (`SnapshotChunk`).
    private var heldChunk: SnapshotEmission?
    private var heldChunkVisibility: PGSnapshot?
    /// The last transactions of this consumer's own that wrote no audit row (checkpoint saves, WAL flushes): a
    /// snapshot that differs from the last batch's only by them needs no batch read, so a snapshot chunk
    /// follows at once and an idle poll stays idle. Written by the checkpointer too, hence the Mutex.
    private let ownTransactions = Mutex<[UInt64]>([])
    private var chunkReader: SnapshotChunkReader { SnapshotChunkReader(chunkSize: config.source.snapshotChunkSize) }

    public static func open(config: SpillwayConfig, logger: Logger) async throws -> AuditLogReader {
        let connection = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-reader",
                                                              timeouts: config.ha.networkTimeouts)
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
        try await reloadTables()  // first: it names a captured table that is gone, which the fingerprint cannot
        loadedFingerprint = try await catalogFingerprint()
        let setting = try await connection.query("SELECT current_setting('track_commit_timestamp')")
        hasCommitTimestamps = setting.first?[0] == "on"
        if !hasCommitTimestamps {
            logger.notice("track_commit_timestamp is off: commit_time shows the transaction's start time instead")
        }
        if config.source.notify {
            try await connection.execute("LISTEN \(SQLText.identifier(names.wakeChannel))")
        }
    }

    /// One cheap catalog query per new snapshot batch: the captured tables' columns, types and primary keys.
    /// When it changes (DDL while `run` runs), the descriptions are read again, so a column added since
    /// start-up maps by its type (a new `numeric` column stays an exact string) and not as raw jsonb.
    /// Nil while a captured table is missing (dropped or renamed a moment ago): `goneTable` reports that at the
    /// next snapshot, after delivering what came before; a cast to regclass here would fail the session instead.
    private func catalogFingerprint() async throws -> String? {
        let result = try await connection.query(
            """
            WITH t AS (SELECT to_regclass(name)::oid AS relid FROM unnest($1::text[]) AS name)
            SELECT NOT EXISTS (SELECT 1 FROM t WHERE relid IS NULL),
                   md5(coalesce((SELECT string_agg(a.attrelid::text || ':' || a.attnum || ':' || a.attname || ':' || a.atttypid::text
                                                   || ':' || a.attgenerated::text || ':' || a.attisdropped::text, ',' ORDER BY a.attrelid, a.attnum)
                                 FROM pg_attribute a WHERE a.attrelid IN (SELECT relid FROM t) AND a.attnum > 0), '')
                       || coalesce((SELECT string_agg(i.indexrelid::text || ':' || i.indkey::text, ',' ORDER BY i.indexrelid)
                                    FROM pg_index i WHERE i.indrelid IN (SELECT relid FROM t) AND i.indisprimary), ''))
            """, [SQLText.arrayLiteral(config.source.tables.map(\.sql))])
        guard let row = result.first, row[0] == "t" else { return nil }
        return row[1]
    }

    private func reloadTablesIfChanged() async throws {
        guard let fingerprint = try await catalogFingerprint() else { return }
        guard fingerprint != loadedFingerprint else { return }
        logger.info("captured tables changed (DDL): reading their columns again")
        do {
            try await reloadTables()
        } catch {
            // Dropped or renamed meanwhile: the next snapshot reports it, after what came before.
            if try await goneTable() != nil { return }
            throw error
        }
        loadedFingerprint = fingerprint
    }

    public func reloadTables() async throws {
        var tables: [TableInfo] = []
        for (index, table) in config.source.tables.enumerated() {
            guard try await PostgresCatalog.tableExists(table, on: connection) else {
                if let renamed = try await renamedTable(recordedAs: table) {
                    throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist: it was renamed to \(renamed)",
                                      fix: "replace it with \(renamed) in source.tables (and in sinks' tables); its audit rows "
                                        + "recorded under the old name are delivered under the new one")
                }
                throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist",
                                  fix: "create it, or remove it from source.tables (and from sinks' tables)")
            }
            var info = try await PostgresCatalog.describe(table, on: connection)
            let arguments = try await captureTriggerArguments(of: table)
            if let oid = try await connection.query("SELECT to_regclass($1)::oid::text", [table.sql]).first?[0] {
                capturedOIDs[table] = oid
            }
            if let arguments {
                let recorded = AuditLogSchema.parseRowTriggerArguments(arguments)
                info.exactJSONColumns = Set(recorded.jsonColumns)
                let jsonColumns = try await PostgresCatalog.jsonColumns(of: table, on: connection)
                let stale = jsonColumns.filter { !info.exactJSONColumns.contains($0) }
                if !stale.isEmpty || arguments.count < 2 {
                    logger.warning("the capture trigger predates the table's current columns: its json columns lose duplicate keys and key order", metadata: [
                        "table": "\(table)", "columns": "\(stale.joined(separator: ","))",
                        "fix": "run `spillway install --config FILE` again (it re-creates the trigger)",
                    ])
                }
                // Sinks never see an excluded column either way (the pipeline removes it); this is about
                // what the audit table holds.
                let expected = config.source.columnPolicies[table]?.triggerArguments ?? []
                if recorded.selection != expected {
                    logger.warning("the capture trigger does not apply source.tables' columns for this table: the audit table records what the trigger was installed with", metadata: [
                        "table": "\(table)",
                        "trigger_columns": "\(recorded.selection.isEmpty ? "all" : recorded.selection.joined(separator: ","))",
                        "configured_columns": "\(expected.isEmpty ? "all" : expected.joined(separator: ","))",
                        "fix": "run `spillway install --config FILE` again (it re-creates the trigger)",
                    ])
                }
            }
            tables.append(info)
        }
        directory = TableDirectory(tables)
        for table in config.source.tables {
            // The trigger records the name the table had at `install`: after a rename, until `install` runs
            // again, rows arrive under the old name and belong to the renamed table.
            guard let arguments = try await captureTriggerArguments(of: table), arguments.count >= 2 else { continue }
            let recorded = QualifiedName(schema: arguments[0], name: arguments[1])
            if recorded != table { directory.add(alias: recorded, for: table) }
        }
        for table in config.source.tables where try await PostgresCatalog.isPartitioned(table, on: connection) {
            let partitions = try await connection.query(
                """
                SELECT n.nspname, c.relname FROM pg_partition_tree($1::regclass) p
                JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.relid <> $1::regclass
                """, [table.sql])
            for row in partitions.rows {
                directory.add(alias: QualifiedName(schema: row[0] ?? "", name: row[1] ?? ""), for: table)
            }
        }
        resolvedNames = []
    }

    /// The arguments of Spillway's row trigger on `table` (schema, name, json columns), or nil when the table
    /// has none (an adopted table's own trigger feeds the audit table).
    private func captureTriggerArguments(of table: QualifiedName) async throws -> [String]? {
        let result = try await connection.query(
            "SELECT tgargs FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2 AND tgparentid = 0",
            [table.sql, AuditLogSchema.captureTrigger])
        guard let hex = result.first?[0] else { return nil }
        // bytea in hex (bytea_output is pinned): the arguments, each ended by a NUL byte.
        var bytes: [UInt8] = []
        var digits = Array(hex.utf8.dropFirst(2))[...]
        while digits.count >= 2, let byte = UInt8(String(decoding: digits.prefix(2), as: UTF8.self), radix: 16) {
            bytes.append(byte)
            digits = digits.dropFirst(2)
        }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }

    /// The table whose capture trigger records rows as `table` (the name it had at `install`), if it is now
    /// called something else.
    private func renamedTable(recordedAs table: QualifiedName) async throws -> QualifiedName? {
        let result = try await connection.query(
            """
            SELECT n.nspname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.tgname = $1 AND t.tgparentid = 0 AND t.tgnargs >= 2
              AND position(convert_to($2, 'UTF8') || '\\x00'::bytea || convert_to($3, 'UTF8') || '\\x00'::bytea IN t.tgargs) = 1
            """, [AuditLogSchema.captureTrigger, table.schema, table.name])
        return result.first.map { QualifiedName(schema: $0[0] ?? "", name: $0[1] ?? "") }
    }

    /// Whether every captured table is still the one whose description was read. A dropped table takes its
    /// trigger with it, and one re-created under the name has none: their changes would never reach the audit
    /// table, so this is an error, not something to carry on past.
    private func goneTable() async throws -> FatalSourceError? {
        // One round trip for every captured table: this runs for each new snapshot.
        let current = try await connection.query(
            "SELECT to_regclass(name)::oid::text FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n",
            [SQLText.arrayLiteral(config.source.tables.map(\.sql))]).rows.map { $0[0] }
        for (index, table) in config.source.tables.enumerated() {
            let oid = index < current.count ? current[index] : nil
            guard oid != capturedOIDs[table] else { continue }
            if let old = capturedOIDs[table],
               let now = try await connection.query(
                   "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid",
                   [old]).first {
                let renamed = QualifiedName(schema: now[0] ?? "", name: now[1] ?? "")
                return FatalSourceError(
                    "table \(table) (source.tables[\(index)]) was renamed to \(renamed): every change committed before Spillway "
                        + "saw it was delivered under the old name. Fix: replace it with \(renamed) in source.tables (and in sinks' "
                        + "tables), then start `spillway run` again; rows recorded under the old name since are delivered under the new")
            }
            return FatalSourceError(
                "table \(table) (source.tables[\(index)]) was dropped\(oid == nil ? "" : " and re-created (without Spillway's trigger)"): "
                    + "every change committed before the drop was delivered. Fix: remove it from source.tables (and from sinks' "
                    + "tables)\(oid == nil ? "" : ", or run `spillway install --config FILE` to capture the new table"), then start "
                    + "`spillway run` again")
        }
        return nil
    }

    /// Rows stored under a name no captured table has may still belong to one: a partition attached since
    /// start-up, or a partition's name written by an adopted trigger. Each such name is looked up in the
    /// catalog once per run; names that stay foreign are reported once, so a skip is never silent.
    private func resolveUnknownNames(in rows: [[String?]]) async throws {
        for row in rows { try await resolveUnknownName(schema: row[3], table: row[4] ?? "") }
    }

    private func resolveUnknownNames(in result: PostgresResult) async throws {
        var previous: (schema: String?, table: String)?
        for row in 0..<result.count {
            let schema = result.string(row: row, column: 3), table = result.string(row: row, column: 4) ?? ""
            // Rows come in runs of one table: each name is checked once per run, not once per row.
            if let previous, previous.schema == schema, previous.table == table { continue }
            previous = (schema, table)
            try await resolveUnknownName(schema: schema, table: table)
        }
    }

    private func resolveUnknownName(schema: String?, table: String) async throws {
        let name = "\(schema ?? "").\(table)"
        guard !resolvedNames.contains(name), directory.resolve(schema: schema, table: table) == .notCaptured else { return }
        resolvedNames.insert(name)
        let ancestors = try await connection.query(
            """
            SELECT cn.nspname, c.relname, an.nspname, ac.relname
            FROM pg_class c JOIN pg_namespace cn ON cn.oid = c.relnamespace
            CROSS JOIN LATERAL pg_partition_ancestors(c.oid) a(relid)
            JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace
            WHERE c.relname = $2 AND ($1::text IS NULL OR cn.nspname = $1) AND c.relispartition
            """, [schema, table])
        let listed = Set(config.source.tables)
        for match in ancestors.rows {
            let root = QualifiedName(schema: match[2] ?? "", name: match[3] ?? "")
            guard listed.contains(root) else { continue }
            directory.add(alias: QualifiedName(schema: match[0] ?? "", name: match[1] ?? ""), for: root)
        }
        if directory.resolve(schema: schema, table: table) == .notCaptured {
            logger.notice("audit rows of a table this consumer does not capture are skipped", metadata: [
                "table": "\(schema.map { "\($0)." } ?? "")\(table)", "audit_table": "\(names.auditTable)",
                "fix": "list the table in source.tables to deliver them",
            ])
        }
    }

    public func close() async {
        await connection.close()
    }

    /// Waits for a NOTIFY from the wake trigger, or `timeout`; true when one arrived (or rows are already on
    /// their way: a prefetched FETCH).
    public func waitForCommits(timeout: Duration) async throws -> Bool {
        if pendingFetch { return true }
        guard config.source.notify else {
            try await Task.sleep(for: timeout)
            return false
        }
        return try await connection.waitForNotifications(timeout: timeout) > 0
    }

    /// Records a transaction of this consumer's that wrote no audit row (see `ownTransactions`).
    public func noteOwnTransaction(_ xid: UInt64) {
        ownTransactions.withLock { xids in
            xids.append(xid)
            if xids.count > 64 { xids.removeFirst(xids.count - 64) }
        }
    }

    /// Up to `limit` events after `cursor`, or nil when nothing new has committed since it.
    public func next(after cursor: AuditLogCursor, limit: Int) async throws -> AuditLogBatch? {
        if !cursor.isHistoryDone {
            return try await nextHistory(after: cursor, limit: limit)
        }
        var cursor = cursor
        if cursor.batch == nil {
            if let emitted = emitHeldChunk(after: cursor, limit: limit) { return emitted }
            if let gone = tableGone { throw gone }
            try await closeCursor()
            var snapshot: PGSnapshot
            if let progress = cursor.snapshot, !progress.isDone, try await goneTable() == nil {
                // The next chunk's snapshot is the next batch's: see `heldChunk`.
                try await reloadTablesIfChanged()
                snapshot = try await readChunk(progress: progress)
                if cursor.completed.hasSameVisibility(as: snapshot, ignoring: ownTransactions.withLock { $0 }) {
                    // Nothing committed since the last batch (but this consumer's own bookkeeping): the chunk
                    // follows it at once.
                    heldChunkVisibility = cursor.completed
                    if let emitted = emitHeldChunk(after: cursor, limit: limit) { return emitted }
                }
            } else {
                snapshot = try await currentSnapshot()
                if cursor.completed.hasSameVisibility(as: snapshot, ignoring: ownTransactions.withLock { $0 }) { return nil }
            }
            if let gone = try await goneTable() {
                logger.error("a captured table is gone; delivering what was committed before, then stopping", metadata: ["error": "\(gone)"])
                tableGone = gone
                // Taken after the table was seen gone: it holds every change committed before it went (a writer
                // holds its lock on the table until commit, so the drop or rename commits after the writers).
                snapshot = try await currentSnapshot()
            } else {
                try await reloadTablesIfChanged()
            }
            cursor.batch = snapshot
        }
        guard let batch = cursor.batch else { return nil }
        if let open = openCursor, open.batch == batch, open.after == cursor.batchProgress {
            // The open cursor is exactly where the consumer stands: keep reading it.
        } else {
            try await closeCursor()
            try await declareCursor(completed: cursor.completed, batch: batch, after: cursor.batchProgress)
        }
        // The open cursor matched, so a FETCH sent ahead is for exactly these rows. Rows are read where libpq
        // holds them: an audit row's data is parsed from its bytes, never copied into a string first.
        let fetch = "FETCH FORWARD \(limit) FROM \(Self.cursorName)"
        if pendingFetch {
            pendingFetch = false
        } else {
            try await connection.send(fetch)
        }
        let result = try await connection.receiveResult()
        try await resolveUnknownNames(in: result)
        if result.count == limit {
            // The server produces the next rows while these are turned into events and delivered.
            try await connection.send(fetch)
            pendingFetch = true
        }
        var events: [ChangeEvent] = []
        events.reserveCapacity(result.count)
        var last: AuditLogOrdering?
        try withExtendedLifetime(result) {
            var tables = TableResolutionCache()
            for row in 0..<result.count {
                last = AuditLogOrdering(transactionRank: Self.integer(result.value(row: row, column: 10)) ?? 0,
                                        sequence: Self.integer(result.value(row: row, column: 1)) ?? 0)
                if let event = try event(row: row, of: result, tables: &tables) { events.append(event) }
            }
        }
        if result.count < limit {
            try await closeCursor()
            cursor.completeBatch()
        } else if let last {
            cursor.batchProgress = last
            openCursor = (batch, last)
        }
        return AuditLogBatch(events: events, cursor: cursor, rowsRead: result.count,
                             completedSnapshot: cursor.batch == nil)
    }

    /// The snapshot the next batch reads up to, once every commit it shows is durable. A transaction committed
    /// with `synchronous_commit = off` is visible before its commit record reaches disk, and a crash then takes
    /// it back: delivered, it would be a change that never happened (the soak saw exactly that). Its commit
    /// record lies before the WAL insert position taken with the snapshot, so waiting until the WAL is flushed
    /// that far makes every transaction in the batch survive a crash. With synchronous commits the wait is
    /// usually nothing; with asynchronous ones it is at most about `wal_writer_delay`.
    private func currentSnapshot() async throws -> PGSnapshot {
        let result = try await connection.query(
            "SELECT pg_current_snapshot()::text, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END")
        guard let text = result.first?[0], let snapshot = PGSnapshot(text) else {
            throw PostgresError(message: "pg_current_snapshot() returned no snapshot")
        }
        if let inserted = result.first?[1] { try await waitForFlush(upTo: inserted) }
        return snapshot
    }

    private func waitForFlush(upTo inserted: String) async throws {
        let isFlushed = "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn"
        if try await connection.query(isFlushed, [inserted]).first?[0] == "t" { return }
        // Nothing may flush it before the WAL writer's next round (`wal_writer_delay`, 200 ms; each snapshot chunk
        // would wait that long). A synchronous commit flushes the WAL up to its commit record, past `inserted`,
        // but only of a transaction that took an id and wrote WAL: a non-transactional logical message (any
        // wal_level; replication consumers drop Spillway's heartbeat prefix) is the smallest such write.
        // Where the role may not do that, the WAL writer's round it is.
        do {
            let written = try await connection.queryScript(
                "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_current_xact_id()::text, pg_logical_emit_message(false, '\(ReplicationEventBuilder.heartbeatPrefix)', '')::text; COMMIT")
            if let xid = written.first?[0].flatMap({ UInt64($0) }) { noteOwnTransaction(xid) }
        } catch is PostgresError {
            try? await connection.execute("ROLLBACK")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while try await connection.query(isFlushed, [inserted]).first?[0] != "t" {
            guard clock.now < deadline else {
                throw PostgresError(message: "the WAL was not flushed up to \(inserted) within 10 s; the batch waits for it")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Reads the next snapshot chunk and holds it; returns its snapshot, once every commit it shows is durable.
    private func readChunk(progress: SnapshotProgress) async throws -> PGSnapshot {
        guard let current = progress.current, let table = directory.tables.first(where: {
            $0.schema == current.name.schema && $0.name == current.name.name
        }) else {
            throw FatalSourceError("the snapshot's table \(progress.current.map { "\($0.name)" } ?? "?") is not in source.tables. Fix: add it "
                + "back, or clear the consumer's snapshot (UPDATE \(config.schema).checkpoints SET snapshot_progress = NULL WHERE consumer = '\(config.consumer)')")
        }
        var (chunk, walInsert) = try await chunkReader.readChunk(of: table, progress: progress, on: connection)
        if let walInsert { try await waitForFlush(upTo: walInsert) }
        let visibility = chunk.visibility
        logger.debug("snapshot chunk read", metadata: ["table": "\(chunk.table)", "rows": "\(chunk.rowsRead)"])
        heldChunk = SnapshotEmission(taking: &chunk, progress: progress, chunkSize: config.source.snapshotChunkSize)
        heldChunkVisibility = visibility
        return visibility
    }

    /// The held chunk's next piece, once the batch of its snapshot is complete (a chunk whose batch was not
    /// read to its end, after a reconnect, is dropped: the next chunk is read again from the checkpoint).
    private func emitHeldChunk(after cursor: AuditLogCursor, limit: Int) -> AuditLogBatch? {
        guard heldChunk != nil else { return nil }
        guard cursor.completed == heldChunkVisibility, let piece = heldChunk?.next(maximum: limit) else {
            heldChunk = nil
            heldChunkVisibility = nil
            return nil
        }
        var cursor = cursor
        cursor.snapshot = piece.progress
        if piece.progress.isDone { logger.info("snapshot done: every captured table's rows were emitted") }
        return AuditLogBatch(events: piece.events, cursor: cursor, rowsRead: max(1, piece.events.count))
    }

    /// The commit time is the timestamptz's own text (the connection pins TimeZone to UTC), made ISO 8601 by
    /// `ISOTimestamp.utcMicroseconds`: to_char for every row cost the server more than a tenth of a batch.
    private var selectList: String {
        """
        b.txid::text, b.seq, b.id::text, b.schema_name, b.table_name, b.operation, b.old_data::text,
        b.new_data::text, b.tenant, (\(commitTimeSQL))::text
        """
    }

    private func declareCursor(completed: PGSnapshot, batch: PGSnapshot, after: AuditLogOrdering?) async throws {
        try await connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
        do {
            // Transactions new in `batch`: those that were running at `completed`, and those that started after
            // it. Both range bounds are indexable; pg_visible_in_snapshot then drops the still-running ones.
            // Each transaction's rank comes from a grouped scan of the index joined back to its rows: one sort
            // of the batch, where a window over the rows sorted it twice (a fifth of the server's time).
            try await connection.query(
                """
                DECLARE \(Self.cursorName) NO SCROLL CURSOR FOR
                SELECT \(selectList), t.rank FROM (
                    SELECT a.txid, max(a.seq) AS rank FROM \(names.auditTable.sql) a
                    WHERE ((a.txid >= $1::xid8 AND a.txid < $2::xid8) OR a.txid = ANY($3::xid8[]))
                      AND pg_visible_in_snapshot(a.txid, $4::pg_snapshot)
                    GROUP BY a.txid
                ) t JOIN \(names.auditTable.sql) b ON b.txid = t.txid
                WHERE $5::bigint IS NULL OR (t.rank, b.seq) > ($5::bigint, $6::bigint)
                ORDER BY t.rank, b.seq
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
        try await dropPrefetch()
        guard openCursor != nil else { return }
        openCursor = nil
        try await connection.execute("COMMIT")
    }

    /// Collects and discards a FETCH sent ahead that is no longer wanted (the cursor closes).
    private func dropPrefetch() async throws {
        guard pendingFetch else { return }
        pendingFetch = false
        _ = try await connection.receive()
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
        try await resolveUnknownNames(in: result.rows)
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

    // MARK: Replay

    /// `spillway replay`: the window of retained audit rows to deliver again, in the order batches deliver them
    /// (transaction rank, then sequence), with their original ids.
    public struct ReplayWindow: Sendable {
        public enum Bound: Sendable, Equatable {
            /// An event position, `txid/seq`.
            case position(txid: UInt64, sequence: Int64)
            /// A commit time (`track_commit_timestamp`, else the row's `changed_at`), as PostgreSQL reads it.
            case time(String)
        }

        public var from: Bound
        public var until: Bound?

        public init(from: Bound, until: Bound?) {
            self.from = from
            self.until = until
        }
    }

    private var replayOpen = false

    /// The next `limit` events of `window` after `after` (nil: from its start). Read through a cursor in one
    /// REPEATABLE READ transaction, so the window is what was committed when the replay began.
    public func replay(_ window: ReplayWindow, after: AuditLogOrdering?, limit: Int) async throws
        -> (events: [ChangeEvent], last: AuditLogOrdering?, isDone: Bool) {
        if !replayOpen {
            try await declareReplayCursor(window, after: after)
            replayOpen = true
        }
        let result = try await connection.query("FETCH FORWARD \(limit) FROM spillway_replay")
        try await resolveUnknownNames(in: result.rows)
        var events: [ChangeEvent] = []
        var last = after
        for row in result.rows {
            last = AuditLogOrdering(transactionRank: Int64(row[10] ?? "") ?? 0, sequence: Int64(row[1] ?? "") ?? 0)
            if let event = try event(from: row) { events.append(event) }
        }
        let isDone = result.rows.count < limit
        if isDone {
            try await connection.execute("COMMIT")
            replayOpen = false
        }
        return (events, last, isDone)
    }

    /// The oldest retained audit row with a transaction id: its position and commit time, for the error of a
    /// window that starts before it.
    public func oldestRetained() async throws -> (position: String, time: String)? {
        let result = try await connection.query(
            """
            SELECT b.txid::text || '/' || b.seq, to_char(\(commitTimeSQL) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            FROM \(names.auditTable.sql) b WHERE b.txid IS NOT NULL ORDER BY b.seq LIMIT 1
            """)
        guard let row = result.first, let position = row[0], let time = row[1] else { return nil }
        return (position, time)
    }

    /// Whether the row at `position` is retained.
    public func isRetained(txid: UInt64, sequence: Int64) async throws -> Bool {
        try await connection.query("SELECT EXISTS (SELECT 1 FROM \(names.auditTable.sql) WHERE txid = $1::xid8 AND seq = $2::bigint)",
                                   [String(txid), String(sequence)]).first?[0] == "t"
    }

    /// Whether `time` is earlier than `other` (both as PostgreSQL reads timestamps).
    public func isEarlier(_ time: String, than other: String) async throws -> Bool {
        try await connection.query("SELECT $1::timestamptz < $2::timestamptz", [time, other]).first?[0] == "t"
    }

    private var commitTimeSQL: String {
        hasCommitTimestamps ? "coalesce(pg_xact_commit_timestamp(b.txid::xid), b.changed_at)" : "b.changed_at"
    }

    private func declareReplayCursor(_ window: ReplayWindow, after: AuditLogOrdering?) async throws {
        var parameters: [String?] = [after.map { String($0.transactionRank) }, after.map { String($0.sequence) }]
        func bound(_ bound: ReplayWindow.Bound, isStart: Bool) -> String {
            switch bound {
            case .position(let txid, let sequence):
                parameters.append(String(txid))
                parameters.append(String(sequence))
                let t = parameters.count - 1, s = parameters.count
                let rank = "(SELECT max(seq) FROM \(names.auditTable.sql) WHERE txid = $\(t)::xid8)"
                return isStart ? "(b.rank, b.seq) >= (\(rank), $\(s)::bigint)" : "(b.rank, b.seq) <= (\(rank), $\(s)::bigint)"
            case .time(let time):
                parameters.append(time)
                return isStart ? "\(commitTimeSQL) >= $\(parameters.count)::timestamptz" : "\(commitTimeSQL) < $\(parameters.count)::timestamptz"
            }
        }
        var conditions = [bound(window.from, isStart: true)]
        if let until = window.until { conditions.append(bound(until, isStart: false)) }
        try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            try await connection.query(
                """
                DECLARE spillway_replay NO SCROLL CURSOR FOR
                SELECT \(selectList), b.rank FROM (
                    SELECT a.*, max(a.seq) OVER (PARTITION BY a.txid) AS rank FROM \(names.auditTable.sql) a
                    WHERE a.txid IS NOT NULL AND pg_visible_in_snapshot(a.txid, pg_current_snapshot())
                ) b
                WHERE ($1::bigint IS NULL OR (b.rank, b.seq) > ($1::bigint, $2::bigint)) AND \(conditions.joined(separator: " AND "))
                ORDER BY b.rank, b.seq
                """, parameters)
        } catch {
            try? await connection.execute("ROLLBACK")
            throw error
        }
    }

    /// The last (schema, table) an audit row named and what it resolved to: a batch's rows come in runs of
    /// one table, so the directory is asked once per run, not once per row.
    private struct TableResolutionCache {
        var schema: String?
        var table: String?
        var resolution: TableDirectory.Resolution = .notCaptured
    }

    /// `event(from:)` for row `row` of a FETCH's result, read where libpq holds it.
    private func event(row: Int, of result: PostgresResult, tables: inout TableResolutionCache) throws -> ChangeEvent? {
        let schema = result.string(row: row, column: 3), table = result.string(row: row, column: 4) ?? ""
        if tables.table != table || tables.schema != schema {
            tables = TableResolutionCache(schema: schema, table: table, resolution: directory.resolve(schema: schema, table: table))
        }
        if tables.resolution == .notCaptured { return nil }
        let stored = AuditLogEvents.Row(
            txid: Self.integer(result.value(row: row, column: 0), as: UInt64.self),
            sequence: Self.integer(result.value(row: row, column: 1)), auditID: result.string(row: row, column: 2) ?? "",
            schema: schema, table: table, operation: result.string(row: row, column: 5) ?? "", oldData: nil, newData: nil,
            tenant: result.string(row: row, column: 8),
            commitTime: result.value(row: row, column: 9).map(ISOTimestamp.utcMicroseconds(fromPostgres:)))
        return try AuditLogEvents.event(from: stored, resolved: tables.resolution,
                                        oldData: result.value(row: row, column: 6), newData: result.value(row: row, column: 7))
    }

    /// An integer's text (txid, seq, rank) from its bytes: digits directly, anything else (a sign, 19 digits and
    /// more) through `init?(_: String)`, which is what the text path did.
    private static func integer<Integer: FixedWidthInteger>(_ bytes: UnsafeBufferPointer<UInt8>?, as: Integer.Type = Int64.self) -> Integer? {
        guard let bytes else { return nil }
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return Integer(String(decoding: bytes, as: UTF8.self))
        }
        var value: Integer = 0
        for byte in bytes { value = value * 10 + Integer(byte - UInt8(ascii: "0")) }
        return value
    }

    /// Nil for rows of tables this consumer does not capture (an adopted audit table may log more, and several
    /// consumers may share one audit table); `resolveUnknownNames` reported those. A row whose bare table
    /// name several captured tables share throws: the checkpoint holds rather than guess.
    private func event(from row: [String?]) throws -> ChangeEvent? {
        let table = row[4] ?? ""
        let stored = AuditLogEvents.Row(
            txid: row[0].flatMap { UInt64($0) }, sequence: row[1].flatMap { Int64($0) }, auditID: row[2] ?? "",
            schema: row[3], table: table, operation: row[5] ?? "", oldData: row[6], newData: row[7],
            tenant: row[8], commitTime: row[9].map { text in
                var text = text
                return text.withUTF8 { ISOTimestamp.utcMicroseconds(fromPostgres: $0) }
            })
        let resolution = directory.resolve(schema: row[3], table: table)
        if resolution == .notCaptured { return nil }
        return try AuditLogEvents.event(from: stored, resolved: resolution)
    }
}
