import SpillwayCore
import SpillwayPostgres

/// `spillway checkpoint show|set`: the consumer's row in `<schema>.checkpoints`, and moving it explicitly.
public enum CheckpointCommand {
    public static func show(config: SpillwayConfig) async throws -> JSONValue {
        try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-checkpoint-show") { connection in
            let record = try await load(config: config, on: connection)
            func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
            var fields: [(String, JSONValue)] = [
                ("consumer", .string(record.consumer)), ("source", .string(record.source)), ("position", text(record.position)),
                ("events_total", .integer(record.eventsTotal)), ("updated_at", text(record.updatedAt)),
            ]
            if record.source == "replication" {
                fields.append(("lsn", .string(record.replicationPosition.description)))
                let slot = try await connection.query(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", [config.source.replication.slot])
                fields.append(("slot_confirmed_flush_lsn", text(slot.first?[0] ?? nil)))
            } else {
                fields.append(("snapshot", .string(record.cursor.completed.description)))
                fields.append(("batch_snapshot", text(record.cursor.batch?.description)))
                fields.append(("history_done", .bool(record.cursor.isHistoryDone)))
            }
            fields.append(("snapshot_progress", record.snapshot?.json ?? .null))
            return .object(JSONObject(fields))
        }
    }

    public static func text(_ shown: JSONValue) -> String {
        guard case .object(let object) = shown else { return "" }
        return object.fields.map { field in
            let value = field.value.stringValue ?? JSONEncoding.string(field.value)
            return "\(field.name):".padding(toLength: 26, withPad: " ", startingAt: 0) + value
        }.joined(separator: "\n")
    }

    /// Moves the checkpoint; refused while a runner of the consumer is active. Returns what it did.
    public static func set(config: SpillwayConfig, position: String) async throws -> String {
        try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-checkpoint-set") { connection in
            let lockName = CheckpointStore.lockName(consumer: config.consumer)
            guard try await connection.query("SELECT pg_try_advisory_lock(hashtext($1))", [lockName]).first?[0] == "t" else {
                throw FatalError("consumer '\(config.consumer)' is running; stop it before moving its checkpoint")
            }
            let record = try await load(config: config, on: connection)
            let store = CheckpointStore(schema: config.schema)
            switch (config.source.kind, position) {
            case (.auditLog, "start"):
                _ = try await store.reset(consumer: config.consumer, includingHistory: config.source.history == .include, on: connection)
                return "consumer '\(config.consumer)' moved to the oldest retained change: the next `spillway run` delivers every retained change"
            case (.auditLog, "now"):
                let snapshot = try await connection.query("SELECT pg_current_snapshot()::text").first?[0] ?? nil
                guard let snapshot, let current = PGSnapshot(snapshot) else { throw PostgresError(message: "no snapshot") }
                var cursor = AuditLogCursor(completed: current, isHistoryDone: true)
                cursor.snapshot = record.snapshot
                try await store.save(consumer: config.consumer, cursor: cursor, position: nil, deliveredEvents: 0, on: connection)
                return "consumer '\(config.consumer)' moved past every change committed so far (\(current))"
            case (.auditLog, _):
                throw ConfigError(key: "--position", problem: "'\(position)' is not a position of the audit_log source",
                                  fix: "use `start` (replay every retained change) or `now` (skip what is committed)")
            case (.replication, _):
                let slot = try await connection.query(
                    "SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1",
                    [config.source.replication.slot])
                guard let row = slot.first, let confirmed = row[0].flatMap({ LSN(string: $0) }), let current = row[1].flatMap({ LSN(string: $0) }) else {
                    throw ConfigError(key: "source.slot", problem: "slot \(config.source.replication.slot) does not exist",
                                      fix: "run `spillway install --config FILE`")
                }
                let target = position == "now" ? current : LSN(string: position)
                guard let target else {
                    throw ConfigError(key: "--position", problem: "'\(position)' is not an LSN", fix: "write it as PostgreSQL does, e.g. 0/1A2B3C4, or `now`")
                }
                guard target >= confirmed else {
                    throw ConfigError(key: "--position", problem: "\(target) is before the slot's confirmed position \(confirmed): a slot never "
                                        + "sends again what it confirmed, so there is nothing to replay from there",
                                      fix: "use \(confirmed) or later; replay older changes from an archive instead")
                }
                var moved = ReplicationPosition(commitLSN: target)
                moved.snapshot = record.snapshot
                try await store.save(consumer: config.consumer, position: moved, lastEventPosition: nil, deliveredEvents: 0, on: connection)
                return "consumer '\(config.consumer)' moved to \(target): changes committed before it are not delivered"
            }
        }
    }

    private static func load(config: SpillwayConfig, on connection: PostgresConnection) async throws -> CheckpointRecord {
        guard try await PostgresCatalog.tableExists(QualifiedName(schema: config.schema, name: "checkpoints"), on: connection),
              let record = try await CheckpointStore(schema: config.schema).load(consumer: config.consumer, on: connection) else {
            throw ConfigError(key: "consumer", problem: "consumer '\(config.consumer)' is not installed in schema '\(config.schema)'",
                              fix: "run `spillway install --config FILE` first")
        }
        return record
    }
}
