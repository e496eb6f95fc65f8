import SpillwayCore

/// Catalog look-ups shared by the installer, the sources and `status`.
public enum PostgresCatalog {
    /// Spillway needs `pg_current_xact_id()` and `pg_snapshot` (PostgreSQL 13).
    public static func requireServerVersion(_ connection: PostgresConnection) async throws {
        let result = try await connection.query("SELECT current_setting('server_version_num')::int")
        let version = Int(result.first?[0] ?? "0") ?? 0
        guard version >= 130_000 else {
            throw PostgresError(message: "PostgreSQL \(version / 10000) is too old: Spillway needs 13 or newer (pg_current_xact_id, pg_snapshot)")
        }
    }

    public static func tableExists(_ table: QualifiedName, on connection: PostgresConnection) async throws -> Bool {
        let result = try await connection.query("SELECT to_regclass($1) IS NOT NULL", [table.sql])
        return result.first?[0] == "t"
    }

    /// Column name → type name (`format_type` without modifiers, e.g. `jsonb`, `bigint`, `xid8`).
    public static func columnTypes(of table: QualifiedName, on connection: PostgresConnection) async throws -> [String: String] {
        let result = try await connection.query(
            """
            SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            """, [table.sql])
        var columns: [String: String] = [:]
        for row in result.rows { columns[row[0] ?? ""] = row[1] ?? "" }
        return columns
    }

    public static func primaryKey(of table: QualifiedName, on connection: PostgresConnection) async throws -> [String] {
        try await describe(table, on: connection).primaryKey
    }

    /// Columns in table order with how each maps to JSON, and the primary key in key order.
    public static func describe(_ table: QualifiedName, on connection: PostgresConnection) async throws -> TableInfo {
        let result = try await connection.query(
            """
            SELECT a.attname, bt.oid::int8, bt.typcategory, et.oid::int8, et.typcategory,
                   format_type(a.atttypid, a.atttypmod), array_position(i.indkey::int2[], a.attnum)
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
            LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
            LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [table.sql])
        var columns: [ColumnInfo] = []
        var keyColumns: [(Int, String)] = []
        for row in result.rows {
            let name = row[0] ?? ""
            let elementKind = row[3].flatMap { UInt32($0) }.map { oid in
                PGTypeKind(oid: oid, category: row[4]?.first ?? "U", element: nil)
            }
            let kind = PGTypeKind(oid: UInt32(row[1] ?? "0") ?? 0, category: row[2]?.first ?? "U", element: elementKind)
            columns.append(ColumnInfo(name: name, kind: kind, typeName: row[5] ?? ""))
            if let position = row[6].flatMap({ Int($0) }) { keyColumns.append((position, name)) }
        }
        return TableInfo(schema: table.schema, name: table.name, columns: columns,
                         primaryKey: keyColumns.sorted { $0.0 < $1.0 }.map(\.1))
    }
}
