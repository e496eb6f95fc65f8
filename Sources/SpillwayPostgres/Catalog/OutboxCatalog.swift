import SpillwayCore

/// Checks `source.outbox` against the database: run by both installers before they change anything, and
/// by `run` before each session, so a missing table or column is a configuration error naming the outbox
/// key (exit 2), not a failure of the capture or of the first delete.
public enum OutboxCatalog {
    /// `checkingGrants`: `delete_after` needs DELETE on the table for the role that runs (not the one that installs).
    public static func verify(_ config: SpillwayConfig, on connection: PostgresConnection, checkingGrants: Bool = false) async throws {
        for outbox in config.source.outbox {
            let key = outbox.configKey
            guard try await PostgresCatalog.tableExists(outbox.table, on: connection) else {
                throw ConfigError(key: "\(key).table", problem: "outbox table \(outbox.table) does not exist",
                                  fix: "create it (e.g. `CREATE TABLE \(outbox.table.sql) (id bigserial PRIMARY KEY, aggregate_type text NOT NULL, "
                                      + "aggregate_id text NOT NULL, payload jsonb NOT NULL)`), or correct the name")
            }
            let columns = try await PostgresCatalog.columnTypes(of: outbox.table, on: connection)
            for (name, column) in [("route_by", outbox.routeBy), ("key", outbox.key), ("payload", outbox.payload)] where columns[column] == nil {
                throw ConfigError(key: "\(key).\(name)", problem: "outbox table \(outbox.table) has no column '\(column)' (its columns: "
                                      + columns.keys.sorted().joined(separator: ", ") + ")",
                                  fix: "name one of its columns, or add the column")
            }
            guard outbox.deleteAfter else { continue }
            if try await PostgresCatalog.primaryKey(of: outbox.table, on: connection).isEmpty {
                throw ConfigError(key: "\(key).delete_after", problem: "outbox table \(outbox.table) has no primary key, which deleting delivered rows needs",
                                  fix: "add one (`ALTER TABLE \(outbox.table.sql) ADD PRIMARY KEY (id)`), or set delete_after: false")
            }
            if checkingGrants,
               try await connection.query("SELECT has_table_privilege($1, 'DELETE')", [outbox.table.sql]).first?[0] != "t" {
                throw ConfigError(key: "\(key).delete_after", problem: "this role may not delete from \(outbox.table)",
                                  fix: "GRANT DELETE ON \(outbox.table.sql) TO the role in database.url, or set delete_after: false")
            }
        }
    }

    /// The part of a checkpoint save that deletes delivered outbox rows: one data-modifying CTE per table,
    /// each deleting only if the save's own UPDATE (the CTE `saved`) moved the checkpoint, so both happen
    /// in one statement or neither. Rows are matched by primary key through `jsonb_populate_recordset`,
    /// which casts each key value to its column's type (an index lookup, whatever the key's types).
    static func deletions(_ rows: [OutboxRow], firstParameter: Int) -> (sql: String, values: [String?]) {
        var byTable: [(QualifiedName, [JSONValue])] = []
        for row in rows {
            if let index = byTable.firstIndex(where: { $0.0 == row.table }) {
                byTable[index].1.append(.object(row.key))
            } else {
                byTable.append((row.table, [.object(row.key)]))
            }
        }
        var sql = ""
        var values: [String?] = []
        for (index, (table, keys)) in byTable.enumerated() {
            guard case .object(let first) = keys[0] else { continue }
            let match = first.names.map { "t.\(SQLText.identifier($0)) = r.\(SQLText.identifier($0))" }.joined(separator: " AND ")
            sql += ", outbox_\(index) AS (DELETE FROM \(table.sql) t USING jsonb_populate_recordset(NULL::\(table.sql), $\(firstParameter + index)::jsonb) r "
                + "WHERE \(match) AND EXISTS (SELECT 1 FROM saved))"
            values.append(JSONEncoding.string(.array(keys)))
        }
        return (sql, values)
    }
}
