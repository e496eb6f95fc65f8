import SpillwayCore
import SpillwayPostgres

/// What `spillway status` shows for one consumer.
public struct StatusReport: Sendable {
    public var consumer: String
    public var source: String
    public var auditTable: String?
    public var position: String?
    public var updatedAt: String?
    public var eventsTotal: Int64
    /// Committed audit rows the consumer has not yet acknowledged.
    public var lagRows: Int64
    /// Age of the oldest such row, in seconds (0 when caught up).
    public var lagSeconds: Double
    public var lastError: String?
    public var lastErrorAt: String?
    public var isHistoryDone: Bool
    /// Replication: the slot, the WAL it retains, its wal_status, and warnings (retained WAL over the limit).
    public var slot: String?
    public var retainedWALBytes: Int64?
    public var slotStatus: String?
    public var warnings: [String] = []
    /// `source.snapshot`: where the table snapshot stands; per table, PostgreSQL's row estimate.
    public var snapshot: SnapshotProgress?
    public var snapshotEstimates: [QualifiedName: Int64] = [:]
    /// `spillway backfill` requests of this consumer, oldest first.
    public var backfills: [BackfillStore.Request] = []

    public static func load(config: SpillwayConfig, on connection: PostgresConnection) async throws -> StatusReport {
        let store = CheckpointStore(schema: config.schema)
        guard try await PostgresCatalog.tableExists(QualifiedName(schema: config.schema, name: "checkpoints"), on: connection),
              let record = try await store.load(consumer: config.consumer, on: connection)
        else {
            throw ConfigError(key: "consumer", problem: "consumer '\(config.consumer)' is not installed in schema '\(config.schema)'",
                              fix: "run `spillway install --config FILE` first")
        }
        if config.source.kind == .replication {
            return try await loadReplication(config: config, record: record, on: connection)
        }
        let audit = AuditLogSchema(config: config).auditTable
        let cursor = record.cursor
        // A batch in progress counts whole: rows are acknowledged batch by batch.
        let lag = try await connection.query(
            """
            SELECT count(*), coalesce(extract(epoch FROM now() - min(changed_at)), 0)::float8 FROM \(audit.sql) a
            WHERE (a.txid IS NULL AND NOT $3::boolean)
               OR ((a.txid >= $1::xid8 OR a.txid = ANY($2::xid8[])) AND pg_visible_in_snapshot(a.txid, pg_current_snapshot()))
            """,
            [String(cursor.completed.xmax), "{" + cursor.completed.running.map(String.init).joined(separator: ",") + "}",
             cursor.isHistoryDone ? "true" : "false"])
        var report = StatusReport(
            consumer: record.consumer, source: record.source, auditTable: record.auditTable, position: record.position,
            updatedAt: record.updatedAt, eventsTotal: record.eventsTotal, lagRows: Int64(lag.first?[0] ?? "0") ?? 0,
            lagSeconds: Double(lag.first?[1] ?? "0") ?? 0, lastError: record.lastError, lastErrorAt: record.lastErrorAt,
            isHistoryDone: record.cursor.isHistoryDone)
        try await report.loadSnapshot(record.snapshot, schema: config.schema, on: connection)
        return report
    }

    private static func loadReplication(config: SpillwayConfig, record: CheckpointRecord,
                                        on connection: PostgresConnection) async throws -> StatusReport {
        let settings = config.source.replication
        let slot = try await connection.query(
            """
            SELECT s.wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::int8,
                   coalesce(extract(epoch FROM r.flush_lag), extract(epoch FROM now() - c.updated_at), 0)::float8
            FROM pg_replication_slots s
            LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
            LEFT JOIN \(CheckpointStore(schema: config.schema).table) c ON c.consumer = $2
            WHERE s.slot_name = $1
            """, [settings.slot, config.consumer])
        var report = StatusReport(
            consumer: record.consumer, source: record.source, auditTable: nil, position: record.position,
            updatedAt: record.updatedAt, eventsTotal: record.eventsTotal, lagRows: 0, lagSeconds: 0,
            lastError: record.lastError, lastErrorAt: record.lastErrorAt, isHistoryDone: true, slot: settings.slot)
        try await report.loadSnapshot(record.snapshot, schema: config.schema, on: connection)
        guard let row = slot.first else {
            report.warnings.append("replication slot \(settings.slot) does not exist: run `spillway install`")
            return report
        }
        report.slotStatus = row[0]
        report.retainedWALBytes = row[1].flatMap { Int64($0) }
        let retained = report.retainedWALBytes ?? 0
        report.lagSeconds = retained > 16 << 20 ? Double(row[2] ?? "0") ?? 0 : 0
        if row[0] == "lost" {
            report.warnings.append("slot \(settings.slot) was invalidated (wal_status = lost): changes were lost. Recover with "
                + "`spillway uninstall` + `spillway install` and re-snapshot the consumers")
        } else if retained > settings.maxRetainedWALBytes {
            report.warnings.append("slot \(settings.slot) retains \(retained >> 20) MiB of WAL, over source.max_retained_wal "
                + "(\(settings.maxRetainedWALBytes >> 20) MiB): is `spillway run` running and are its sinks healthy?")
        }
        return report
    }

    /// Adds the initial snapshot's progress with each table's estimated row count (`reltuples`, over its
    /// partitions), and the consumer's backfill requests.
    private mutating func loadSnapshot(_ progress: SnapshotProgress?, schema: String, on connection: PostgresConnection) async throws {
        let store = BackfillStore(schema: schema)
        if try await store.exists(on: connection) { backfills = try await store.all(consumer: consumer, on: connection) }
        guard let progress, progress.backfill == nil else { return }
        snapshot = progress
        for table in progress.tables {
            let estimate = try await connection.query(
                """
                SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_partition_tree(to_regclass($1)) p
                JOIN pg_class c ON c.oid = p.relid
                """, [table.name.sql])
            snapshotEstimates[table.name] = Int64(estimate.first?[0] ?? "") ?? 0
        }
    }

    private var snapshotJSON: JSONValue {
        guard let snapshot else { return .null }
        return .object(JSONObject([
            ("done", .bool(snapshot.isDone)), ("rows", .integer(snapshot.tables.reduce(0) { $0 + $1.rows })),
            ("tables", .array(snapshot.tables.map { table in
                .object(JSONObject([
                    ("table", .string(table.name.description)), ("rows", .integer(table.rows)),
                    ("rows_estimated", .integer(max(snapshotEstimates[table.name] ?? 0, table.rows))), ("done", .bool(table.isDone)),
                ]))
            })),
        ]))
    }

    public var json: JSONValue {
        func text(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        return .object(JSONObject([
            ("consumer", .string(consumer)), ("source", .string(source)), ("audit_table", text(auditTable)),
            ("position", text(position)), ("updated_at", text(updatedAt)), ("events_total", .integer(eventsTotal)),
            ("lag_rows", .integer(lagRows)), ("lag_seconds", .number(String(format: lagSeconds))),
            ("history_done", .bool(isHistoryDone)), ("last_error", text(lastError)), ("last_error_at", text(lastErrorAt)),
            ("slot", text(slot)), ("retained_wal_bytes", retainedWALBytes.map { .integer($0) } ?? .null),
            ("slot_status", text(slotStatus)), ("warnings", .array(warnings.map { .string($0) })),
            ("snapshot", snapshotJSON),
            ("backfills", .array(backfills.map { request in
                .object(JSONObject([
                    ("id", .integer(request.id)), ("table", .string(request.table.description)),
                    ("where", request.filter.map(JSONValue.string) ?? .null), ("state", .string(request.state.rawValue)),
                    ("rows", .integer(request.rows)), ("rows_estimated", .integer(max(request.rowsEstimated, request.rows))),
                    ("rows_per_second", request.rate.map { .number(String(format: $0)) } ?? .null),
                    ("eta_seconds", request.etaSeconds.map { .number(String(format: $0)) } ?? .null),
                    ("requested_at", .string(request.requestedAt)), ("finished_at", request.finishedAt.map(JSONValue.string) ?? .null),
                ]))
            })),
        ]))
    }

    public var text: String {
        var lines = """
        consumer:     \(consumer)
        source:       \(source)\(auditTable.map { " (\($0))" } ?? "")\(slot.map { " (slot \($0), \(slotStatus ?? "?"))" } ?? "")
        position:     \(position ?? "(nothing delivered yet)")
        updated:      \(updatedAt ?? "-")
        delivered:    \(eventsTotal) events
        lag:          \(lagRows) rows, \(String(format: lagSeconds)) s
        last error:   \(lastError.map { "\($0) (at \(lastErrorAt ?? "?"))" } ?? "none")
        """
        if let retainedWALBytes { lines += "\nretained WAL: \(retainedWALBytes) bytes" }
        if let snapshot {
            let parts = snapshot.tables.map { table in
                "\(table.name) \(table.isDone ? "done" : "\(table.rows)/~\(max(snapshotEstimates[table.name] ?? 0, table.rows))"), \(table.rows) rows"
            }
            lines += "\nsnapshot:     \(snapshot.isDone ? "done" : "running"): \(parts.joined(separator: "; "))"
        }
        for request in backfills where request.state != .done || backfills.count <= 5 {
            lines += "\nbackfill:     \(BackfillRequest.progressLine(request)) (\(request.table)\(request.filter.map { " where \($0)" } ?? ""))"
        }
        for warning in warnings { lines += "\nwarning:      \(warning)" }
        return lines
    }
}

private extension String {
    /// Seconds with millisecond precision, without Foundation's locale-dependent formatting.
    init(format seconds: Double) {
        let millis = Int64((seconds * 1000).rounded())
        let fraction = String(abs(millis % 1000))
        self = "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
