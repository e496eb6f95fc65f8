import Logging
import SpillwayCore

/// Sets up the replication source: checks the server (wal_level, privileges, replica identity), creates the
/// publication for `source.tables` (or completes an existing one), the slot, and the consumer's checkpoint.
public struct ReplicationInstaller: Sendable {
    let config: SpillwayConfig
    let logger: Logger

    public init(config: SpillwayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    var settings: ReplicationSettings { config.source.replication }

    public func install(on connection: PostgresConnection) async throws -> InstallReport {
        try await OutboxCatalog.verify(config, on: connection)  // before anything is created
        var report = InstallReport(createdAuditTable: false, adoptedAuditTable: false, triggeredTables: [],
                                   tablesWithOwnTrigger: [], historyRows: 0, warnings: [])
        let version = Int(try await connection.query("SELECT current_setting('server_version_num')").first?[0] ?? "0") ?? 0
        guard version >= 140_000 else {
            throw ConfigError(key: "source.kind", problem: "the replication source needs PostgreSQL 14 or newer (pgoutput messages)",
                              fix: "use `kind: audit_log` on this server")
        }
        let walLevel = try await connection.query("SELECT current_setting('wal_level')").first?[0] ?? "?"
        guard walLevel == "logical" else {
            throw ConfigError(key: "source.kind", problem: "the server runs with wal_level = \(walLevel), logical decoding needs logical",
                              fix: "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")
        }
        let role = try await connection.query("SELECT current_user, rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user")
        guard role.first?[1] == "t" else {
            throw ConfigError(key: "database.url", problem: "role \(role.first?[0] ?? "?") may not use replication",
                              fix: "ALTER ROLE \(role.first?[0] ?? "name") REPLICATION, or connect as a role that has it")
        }
        try await connection.execute("BEGIN")
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["spillway-install:\(config.schema)"])
            for (index, table) in config.source.tables.enumerated() {
                guard try await PostgresCatalog.tableExists(table, on: connection) else {
                    throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist",
                                      fix: "create the table first, or correct the name (schema.table)")
                }
                let identity = try await connection.query("SELECT relreplident FROM pg_class WHERE oid = $1::regclass", [table.sql])
                let primaryKey = try await PostgresCatalog.primaryKey(of: table, on: connection)
                let hasKey = !primaryKey.isEmpty
                if identity.first?[0] == "i" {
                    let indexed = try await connection.query(
                        """
                        SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                        WHERE i.indrelid = $1::regclass AND i.indisreplident
                        """, [table.sql])
                    let identityColumns = Set(indexed.rows.compactMap { $0[0] })
                    let missing = primaryKey.filter { !identityColumns.contains($0) }
                    if !missing.isEmpty {
                        throw ConfigError(
                            key: "source.tables[\(index)]",
                            problem: "table \(table) has REPLICA IDENTITY USING INDEX on an index without its primary-key column(s) "
                                + "\(missing.joined(separator: ", ")): its deletes would carry no primary key, so they could not be "
                                + "keyed like the row's other changes (another Kafka partition, a tombstone that misses the row)",
                            fix: "ALTER TABLE \(table.sql) REPLICA IDENTITY FULL (or DEFAULT, or USING INDEX on a unique index that "
                                + "includes the primary key)")
                    }
                }
                if try await PostgresCatalog.isPartitioned(table, on: connection) {
                    report.warnings.append("table \(table) is partitioned: its changes arrive under its own name, but a TRUNCATE "
                        + "of a single partition, and detaching or dropping one, are not captured; truncate \(table) itself or "
                        + "DELETE from the partition when consumers must follow")
                }
                if !hasKey, identity.first?[0] != "f" {
                    report.warnings.append("table \(table) has no primary key and no REPLICA IDENTITY FULL: while it is published, "
                        + "PostgreSQL rejects its UPDATEs and DELETEs. Fix: add a primary key, or ALTER TABLE \(table) REPLICA IDENTITY FULL")
                }
            }
            try await PostgresCatalog.requireNoNestedPartitions(config.source.tables, on: connection)
            let names = AuditLogSchema(config: config)
            try await connection.execute(names.createSchemaSQL())
            let publication = SQLText.identifier(settings.publication)
            let exists = try await connection.query("SELECT pubviaroot FROM pg_publication WHERE pubname = $1", [settings.publication])
            // A partitioned table's changes are published under its own name (as the audit_log source records
            // them), not under the partition's that holds the row.
            if exists.rows.isEmpty {
                try await connection.execute("CREATE PUBLICATION \(publication) FOR TABLE \(config.source.tables.map(\.sql).joined(separator: ", ")) "
                    + "WITH (publish_via_partition_root = true)")
            } else {
                if exists.first?[0] != "t" {
                    try await connection.execute("ALTER PUBLICATION \(publication) SET (publish_via_partition_root = true)")
                    report.warnings.append("publication \(settings.publication) now publishes changes of partitioned tables under "
                        + "the partitioned table's name (publish_via_partition_root = true)")
                }
                let published = try await connection.query(
                    "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", [settings.publication])
                let present = Set(published.rows.compactMap { $0[0] })
                for table in config.source.tables where !present.contains(table.description) {
                    try await connection.execute("ALTER PUBLICATION \(publication) ADD TABLE \(table.sql)")
                }
            }
            try await CheckpointStore(schema: config.schema).registerReplication(consumer: config.consumer, slot: settings.slot, on: connection)

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
        // A slot cannot be created in a transaction that wrote anything, so it comes last, on its own.
        let slot = try await connection.query("SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1", [settings.slot])
        if let existing = slot.first {
            let database = try await connection.query("SELECT current_database()").first?[0]
            guard existing[0] == "pgoutput", existing[1] == database else {
                throw ConfigError(key: "source.slot", problem: "slot \(settings.slot) exists for plugin \(existing[0] ?? "?") in database \(existing[1] ?? "?")",
                                  fix: "name another slot in source.slot, or drop that one with pg_drop_replication_slot")
            }
        } else {
            let checkpoint = try await connection.query(
                "SELECT lsn::text FROM \(SQLText.identifier(config.schema)).checkpoints WHERE consumer = $1 AND lsn > '0/0'",
                [config.consumer])
            try await connection.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [settings.slot])
            if let lsn = checkpoint.first?[0] {
                report.warnings.append("created a new replication slot \(settings.slot), but consumer \(config.consumer) had read "
                    + "up to \(lsn) from a slot of that name that was dropped: changes committed between then and now are not in the "
                    + "new slot. Re-snapshot what the consumers feed (rebuild the index or cache from the tables)")
            }
        }
        return report
    }

    /// Drops the slot (it would otherwise retain WAL forever) and the publication.
    public func uninstall(on connection: PostgresConnection) async throws {
        let active = try await connection.query("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [settings.slot])
        if let pid = active.first?[0] {
            throw PostgresError(message: "slot \(settings.slot) is in use by process \(pid): stop `spillway run` first")
        }
        if !active.rows.isEmpty {
            try await connection.query("SELECT pg_drop_replication_slot($1)", [settings.slot])
        }
        try await connection.execute("DROP PUBLICATION IF EXISTS \(SQLText.identifier(settings.publication))")
        try await connection.execute("DROP SCHEMA IF EXISTS \(SQLText.identifier(config.schema)) CASCADE")
    }
}
