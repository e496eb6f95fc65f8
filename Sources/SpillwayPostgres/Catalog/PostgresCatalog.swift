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

    /// The primary-key columns in key order (no type resolution: the replication reader asks for every
    /// Relation message).
    public static func primaryKey(of table: QualifiedName, on connection: PostgresConnection) async throws -> [String] {
        let result = try await connection.query(
            """
            SELECT a.attname FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1::regclass AND i.indisprimary
            ORDER BY k.n
            """, [table.sql])
        return result.rows.compactMap { $0[0] }
    }

    /// Columns in table order with how each maps to JSON, and the primary key in key order.
    public static func describe(_ table: QualifiedName, on connection: PostgresConnection) async throws -> TableInfo {
        let result = try await connection.query(
            """
            SELECT a.attname, a.atttypid::int8, format_type(a.atttypid, a.atttypmod),
                   array_position(i.indkey::int2[], a.attnum), a.attgenerated <> ''
            FROM pg_attribute a
            LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [table.sql])
        let kinds = try await typeKinds(of: result.rows.compactMap { $0[1].flatMap { UInt32($0) } }, on: connection)
        var columns: [ColumnInfo] = []
        var keyColumns: [(Int, String)] = []
        for row in result.rows {
            let name = row[0] ?? ""
            let kind = row[1].flatMap { UInt32($0) }.flatMap { kinds[$0] } ?? .text
            columns.append(ColumnInfo(name: name, kind: kind, typeName: row[2] ?? "", isGenerated: row[4] == "t"))
            if let position = row[3].flatMap({ Int($0) }) { keyColumns.append((position, name)) }
        }
        return TableInfo(schema: table.schema, name: table.name, columns: columns,
                         primaryKey: keyColumns.sorted { $0.0 < $1.0 }.map(\.1))
    }

    /// How each type maps to JSON: built-in types directly, domains as their base type, arrays by their
    /// element, composites field by field (each field's type resolved the same way), everything else by its
    /// category. One catalog round trip per level of nesting.
    public static func typeKinds(of oids: [UInt32], on connection: PostgresConnection) async throws -> [UInt32: PGTypeKind] {
        struct Entry {
            var typeType: Character
            var baseType: UInt32
            var category: Character
            var element: UInt32
            var fields: [(String, UInt32)]
        }
        var entries: [UInt32: Entry] = [:]
        var pending = Set(oids.filter { PGTypeKind(builtinOID: $0) == nil })
        var rounds = 0
        while !pending.isEmpty, rounds < 32 {
            rounds += 1
            let list = "{" + pending.map(String.init).joined(separator: ",") + "}"
            let types = try await connection.query(
                """
                SELECT t.oid::int8, t.typtype, t.typbasetype::int8, t.typcategory, t.typelem::int8,
                       f.names, f.types
                FROM pg_type t
                LEFT JOIN LATERAL (
                    SELECT array_agg(a.attname ORDER BY a.attnum) AS names, array_agg(a.atttypid::int8 ORDER BY a.attnum) AS types
                    FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                ) f ON t.typtype = 'c'
                WHERE t.oid = ANY($1::oid[])
                """, [list])
            pending = []
            for row in types.rows {
                guard let oid = row[0].flatMap({ UInt32($0) }) else { continue }
                func values(_ text: String?) -> [String] {
                    (text.flatMap { PGArrayLiteral.parse($0) } ?? []).compactMap { item in
                        if case .value(let value) = item { return value }
                        return nil
                    }
                }
                let fields = zip(values(row[5]), values(row[6]).map { UInt32($0) ?? 0 }).map { ($0, $1) }
                let entry = Entry(typeType: row[1]?.first ?? "b", baseType: row[2].flatMap { UInt32($0) } ?? 0,
                                  category: row[3]?.first ?? "U", element: row[4].flatMap { UInt32($0) } ?? 0, fields: fields)
                entries[oid] = entry
                for next in [entry.baseType, entry.element] + fields.map(\.1)
                where next != 0 && PGTypeKind(builtinOID: next) == nil && entries[next] == nil {
                    pending.insert(next)
                }
            }
        }
        var kinds: [UInt32: PGTypeKind] = [:]
        func kind(_ oid: UInt32, depth: Int) -> PGTypeKind {
            if let builtin = PGTypeKind(builtinOID: oid) { return builtin }
            if let known = kinds[oid] { return known }
            guard let entry = entries[oid], depth < 32 else { return .text }
            let resolved: PGTypeKind
            if entry.typeType == "d" {
                resolved = kind(entry.baseType, depth: depth + 1)
            } else if entry.category == "A", entry.element != 0 {
                resolved = .array(element: kind(entry.element, depth: depth + 1))
            } else if entry.typeType == "c" {
                resolved = .composite(fields: entry.fields.map { CompositeField(name: $0.0, kind: kind($0.1, depth: depth + 1)) })
            } else {
                resolved = PGTypeKind(oid: oid, category: entry.category, element: nil)
            }
            kinds[oid] = resolved
            return resolved
        }
        for oid in oids { kinds[oid] = kind(oid, depth: 0) }
        return kinds
    }
}

extension PostgresCatalog {
    /// The tables `table` is a partition of, nearest first; empty for a table that is no partition.
    public static func partitionAncestors(of table: QualifiedName, on connection: PostgresConnection) async throws -> [QualifiedName] {
        let result = try await connection.query(
            """
            SELECT n.nspname, c.relname FROM pg_partition_ancestors($1::regclass) WITH ORDINALITY a(relid, level)
            JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.relid <> $1::regclass ORDER BY a.level
            """, [table.sql])
        return result.rows.map { QualifiedName(schema: $0[0] ?? "", name: $0[1] ?? "") }
    }

    public static func isPartitioned(_ table: QualifiedName, on connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT relkind FROM pg_class WHERE oid = $1::regclass", [table.sql]).first?[0] == "p"
    }

    /// Columns of type `json` (not jsonb), directly or through a domain, in table order.
    public static func jsonColumns(of table: QualifiedName, on connection: PostgresConnection) async throws -> [String] {
        let result = try await connection.query(
            """
            SELECT a.attname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND 'json'::regtype IN (t.oid, t.typbasetype)
            ORDER BY a.attnum
            """, [table.sql])
        return result.rows.compactMap { $0[0] }
    }

    /// Refuses a `source.tables` list that names a partition together with a partitioned table it belongs to:
    /// its changes would be captured twice, under two names. Shared by both sources' installers.
    public static func requireNoNestedPartitions(_ tables: [QualifiedName], on connection: PostgresConnection) async throws {
        let listed = Set(tables)
        for (index, table) in tables.enumerated() {
            for ancestor in try await partitionAncestors(of: table, on: connection) where listed.contains(ancestor) {
                throw ConfigError(key: "source.tables[\(index)]",
                                  problem: "\(table) is a partition of \(ancestor), which source.tables also lists",
                                  fix: "list only \(ancestor): the changes of all its partitions arrive under its name")
            }
        }
    }
}
