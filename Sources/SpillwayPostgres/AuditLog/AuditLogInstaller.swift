import Logging
import SpillwayCore

/// What `spillway install` reports back.
public struct InstallReport: Sendable {
    public var createdAuditTable: Bool
    public var adoptedAuditTable: Bool
    /// Tables that got Spillway's row trigger.
    public var triggeredTables: [QualifiedName]
    /// Tables already feeding an adopted audit table through their own trigger.
    public var tablesWithOwnTrigger: [QualifiedName]
    public var historyRows: Int
    public var warnings: [String]
}

/// Creates (idempotently, in one transaction) everything the audit_log source needs: schema, sequence,
/// checkpoint table, audit table (or adopts an existing one), capture and wake triggers, and the consumer's
/// checkpoint row. Either all of it lands or none does.
public struct AuditLogInstaller: Sendable {
    let config: SpillwayConfig
    let names: AuditLogSchema
    let logger: Logger

    public init(config: SpillwayConfig, logger: Logger) {
        self.config = config
        self.names = AuditLogSchema(config: config)
        self.logger = logger
    }

    public func install(on connection: PostgresConnection) async throws -> InstallReport {
        try await OutboxCatalog.verify(config, on: connection)  // before anything is created
        try await PostgresCatalog.requireServerVersion(connection)
        var report = InstallReport(createdAuditTable: false, adoptedAuditTable: false, triggeredTables: [],
                                   tablesWithOwnTrigger: [], historyRows: 0, warnings: [])
        try await connection.execute("BEGIN")
        do {
            // Two installs at once must not interleave their DDL.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["spillway-install:\(names.schema)"])
            for (index, table) in config.source.tables.enumerated() {
                guard try await PostgresCatalog.tableExists(table, on: connection) else {
                    throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist",
                                      fix: "create the table first, or correct the name (schema.table)")
                }
            }
            try await PostgresCatalog.requireNoNestedPartitions(config.source.tables, on: connection)
            try await connection.execute(names.createSchemaSQL())
            if try await PostgresCatalog.tableExists(names.auditTable, on: connection) {
                try await adopt(on: connection, report: &report)
            } else {
                try await connection.execute(names.createAuditTableSQL())
                report.createdAuditTable = true
            }
            try await connection.execute(names.indexSQL())
            try await connection.execute(names.keepJSONTextFunctionSQL())
            try await connection.execute(names.captureFunctionSQL())
            try await connection.execute(names.wakeFunctionSQL())
            if config.source.notify {
                try await connection.execute(names.wakeTriggerSQL())
            } else {
                try await connection.execute("DROP TRIGGER IF EXISTS \(AuditLogSchema.wakeTrigger) ON \(names.auditTable.sql)")
            }
            if report.adoptedAuditTable { try await requireDistinctLegacyNames(on: connection) }
            for table in config.source.tables {
                if report.adoptedAuditTable, try await hasAdoptedAuditTrigger(table, on: connection) {
                    report.tablesWithOwnTrigger.append(table)
                    if let policy = config.source.columnPolicies[table], policy.columns != .all {
                        report.warnings.append("table \(table) is audited by its own trigger, so its excluded columns still reach "
                            + "the audit table \(names.auditTable); Spillway removes them before any sink")
                    }
                } else {
                    try await renameRecordedRows(of: table, on: connection)
                    let jsonColumns = try await PostgresCatalog.jsonColumns(of: table, on: connection)
                    try await connection.execute(names.rowTriggerSQL(on: table, jsonColumns: jsonColumns,
                                                                     columns: config.source.columnPolicies[table]))
                    report.triggeredTables.append(table)
                }
                try await connection.execute(names.truncateTriggerSQL(on: table))
                if try await PostgresCatalog.isPartitioned(table, on: connection) {
                    report.warnings.append("table \(table) is partitioned: its changes arrive under its own name, but a TRUNCATE "
                        + "of a single partition, and detaching or dropping one, are not captured; truncate \(table) itself or "
                        + "DELETE from the partition when consumers must follow")
                }
                if try await PostgresCatalog.primaryKey(of: table, on: connection).isEmpty {
                    report.warnings.append("table \(table) has no primary key: its events carry `key: null`, so "
                        + "per-key routing (Kafka partitions, cache keys) cannot work for it; add a primary key")
                }
            }
            let checkpoints = CheckpointStore(schema: names.schema)
            try await checkpoints.register(consumer: config.consumer, auditTable: names.auditTable,
                                           cursor: .start(includingHistory: config.source.history == .include),
                                           on: connection)

            if config.source.snapshot == .initial {
                try await SnapshotChunkReader.requirePrimaryKeys(of: config.source.tables, on: connection)
                try await CheckpointStore(schema: config.schema).requestSnapshot(
                    consumer: config.consumer, progress: SnapshotProgress(tables: config.source.tables), on: connection)
            }
            try await connection.execute("COMMIT")
        } catch {
            try? await connection.execute("ROLLBACK")
            throw error
        }
        return report
    }

    /// A table renamed since the last `install` still has a trigger that records its old name, and audit rows
    /// under that name that `run` may not have delivered yet. The trigger is about to record the new name, so
    /// those rows move to it too: the reader would otherwise not know them as this table's.
    private func renameRecordedRows(of table: QualifiedName, on connection: PostgresConnection) async throws {
        let recorded = try await connection.query(
            """
            SELECT convert_from(substring(a FROM 1 FOR p1 - 1), 'UTF8'),
                   convert_from(substring(substring(a FROM p1 + 1) FROM 1 FOR position('\\x00'::bytea IN substring(a FROM p1 + 1)) - 1), 'UTF8')
            FROM (SELECT tgargs AS a, position('\\x00'::bytea IN tgargs) AS p1 FROM pg_trigger
                  WHERE tgrelid = $1::regclass AND tgname = $2 AND tgparentid = 0 AND tgnargs >= 2) t
            """, [table.sql, AuditLogSchema.captureTrigger])
        guard let row = recorded.first, let schema = row[0], let name = row[1] else { return }
        let old = QualifiedName(schema: schema, name: name)
        guard old != table, !config.source.tables.contains(old) else { return }
        try await connection.query(
            "UPDATE \(names.auditTable.sql) SET schema_name = $1, table_name = $2 WHERE schema_name = $3 AND table_name = $4",
            [table.schema, table.name, old.schema, old.name])
    }

    private func adopt(on connection: PostgresConnection, report: inout InstallReport) async throws {
        let columns = try await PostgresCatalog.columnTypes(of: names.auditTable, on: connection)
        let required = ["table_name", "operation", "old_data", "new_data", "changed_at"]
        let missing = required.filter { columns[$0] == nil }
        guard missing.isEmpty else {
            throw ConfigError(
                key: "source.audit_table",
                problem: "table \(names.auditTable) exists but lacks column(s) \(missing.joined(separator: ", "))",
                fix: "point source.audit_table at an audit table of the shape (id, table_name, operation, old_data jsonb, "
                    + "new_data jsonb, changed_by, changed_at), or at a table name that does not exist yet")
        }
        for (name, type) in [("old_data", "jsonb"), ("new_data", "jsonb")] where columns[name] != type {
            throw ConfigError(key: "source.audit_table",
                              problem: "column \(names.auditTable).\(name) is \(columns[name] ?? "?"), not jsonb",
                              fix: "convert it with ALTER TABLE ... ALTER COLUMN \(name) TYPE jsonb USING \(name)::jsonb")
        }
        for column in names.addedColumns {
            if let existing = columns[column.name] {
                guard existing == column.type else {
                    throw ConfigError(key: "source.audit_table",
                                      problem: "column \(names.auditTable).\(column.name) exists with type \(existing), Spillway needs \(column.type)",
                                      fix: "rename that column, or use a separate audit table (leave source.audit_table unset)")
                }
                continue
            }
            // Added without a default first, then given one: adding a column with a volatile default
            // would rewrite every history row with the installing transaction's id.
            try await connection.execute("ALTER TABLE \(names.auditTable.sql) ADD COLUMN \(SQLText.identifier(column.name)) \(column.type)")
            if let defaultSQL = column.defaultSQL {
                try await connection.execute(
                    "ALTER TABLE \(names.auditTable.sql) ALTER COLUMN \(SQLText.identifier(column.name)) SET DEFAULT \(defaultSQL)")
            }
        }
        if names.auditTable != QualifiedName(schema: names.schema, name: "audit_log") {
            report.adoptedAuditTable = true
            let history = try await connection.query("SELECT count(*) FROM \(names.auditTable.sql) WHERE txid IS NULL")
            report.historyRows = Int(history.first?[0] ?? "0") ?? 0
        }
    }

    /// An adopted trigger function records `TG_TABLE_NAME` but no schema, so two tables of one name that
    /// feed the audit table through one cannot be told apart, and a captured table would receive the other's
    /// rows (or both would be dropped as ambiguous). Refused before anything is created.
    private func requireDistinctLegacyNames(on connection: PostgresConnection) async throws {
        let legacy = try await connection.query(
            """
            SELECT DISTINCT n.nspname, c.relname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND p.proname = ANY($1::text[]) AND t.tgname <> $2
            """, ["{\(AuditLogSchema.adoptedTriggerFunctions.joined(separator: ","))}", AuditLogSchema.captureTrigger])
        let legacyTables = legacy.rows.map { QualifiedName(schema: $0[0] ?? "", name: $0[1] ?? "") }
        for (index, table) in config.source.tables.enumerated() {
            let namesakes = legacyTables.filter { $0.name == table.name && $0.schema != table.schema }
            guard let other = namesakes.first else { continue }
            throw ConfigError(
                key: "source.tables[\(index)]",
                problem: "\(other) feeds \(names.auditTable) through a trigger that records no schema, and \(table) has the "
                    + "same name: their audit rows cannot be told apart",
                fix: "drop that trigger on \(other) (`DROP TRIGGER ... ON \(other.sql)`; list \(other) in source.tables and "
                    + "Spillway's own trigger, which records the schema, captures it), or rename one of the tables")
        }
    }

    private func hasAdoptedAuditTrigger(_ table: QualifiedName, on connection: PostgresConnection) async throws -> Bool {
        let result = try await connection.query(
            """
            SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal AND p.proname = ANY($2::text[])
              AND t.tgname <> $3
            """,
            [table.sql, "{\(AuditLogSchema.adoptedTriggerFunctions.joined(separator: ","))}", AuditLogSchema.captureTrigger])
        return !result.rows.isEmpty
    }

    /// Removes the capture triggers and the Spillway schema (audit table, checkpoints, functions). An adopted
    /// audit table stays, with its rows; only its Spillway defaults go.
    public func uninstall(on connection: PostgresConnection) async throws {
        try await connection.execute("BEGIN")
        do {
            for table in config.source.tables where try await PostgresCatalog.tableExists(table, on: connection) {
                try await connection.execute("DROP TRIGGER IF EXISTS \(AuditLogSchema.captureTrigger) ON \(table.sql)")
                try await connection.execute("DROP TRIGGER IF EXISTS \(AuditLogSchema.truncateTrigger) ON \(table.sql)")
            }
            if names.auditTable.schema != names.schema, try await PostgresCatalog.tableExists(names.auditTable, on: connection) {
                try await connection.execute("DROP TRIGGER IF EXISTS \(AuditLogSchema.wakeTrigger) ON \(names.auditTable.sql)")
                for column in ["txid", "seq", "tenant"] {
                    try await connection.execute(
                        "ALTER TABLE \(names.auditTable.sql) ALTER COLUMN \(SQLText.identifier(column)) DROP DEFAULT")
                }
            }
            try await connection.execute("DROP SCHEMA IF EXISTS \(SQLText.identifier(names.schema)) CASCADE")
            try await connection.execute("COMMIT")
        } catch {
            try? await connection.execute("ROLLBACK")
            throw error
        }
    }
}
