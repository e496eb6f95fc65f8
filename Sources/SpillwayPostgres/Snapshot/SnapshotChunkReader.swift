import SpillwayCore

/// Reads table snapshot chunks (`source.snapshot`): the next `chunkSize` rows of a table after the last key
/// emitted, in primary-key order, in one short REPEATABLE READ transaction whose snapshot comes back with the
/// rows. No transaction stays open between chunks, so a large table pins neither WAL nor the xmin horizon.
///
/// Values are read in PostgreSQL's text output format (the connection pins DateStyle, TimeZone,
/// bytea_output, ...) and mapped by `PGValueMapper` as the sources map theirs, so a `read` event's row has
/// the same shape as an insert's.
public struct SnapshotChunkReader: Sendable {
    static let cursorName = "spillway_snapshot_chunk"
    /// Rows per FETCH within a chunk: small enough that the server's next piece overlaps this one's mapping.
    static let fetchSize = 1000

    public var chunkSize: Int
    /// The replication source's `tenant_column(s)`: a read event carries the row's tenant as a change would.
    public var tenantColumn: @Sendable (QualifiedName) -> String?

    public init(chunkSize: Int, tenantColumn: @escaping @Sendable (QualifiedName) -> String? = { _ in nil }) {
        self.chunkSize = chunkSize
        self.tenantColumn = tenantColumn
    }

    /// Every table of `tables` must have a primary key: chunks are read by it, and `read` events are keyed
    /// by it. Thrown at `install` and at `run`'s start, before anything is emitted.
    public static func requirePrimaryKeys(of tables: [QualifiedName], on connection: PostgresConnection,
                                          key: String = "source.snapshot",
                                          fix: String = "or remove `source.snapshot: initial` (its changes still stream)") async throws {
        for table in tables where try await PostgresCatalog.primaryKey(of: table, on: connection).isEmpty {
            throw ConfigError(key: key, problem: "table \(table) has no primary key: a snapshot reads tables in chunks by primary "
                                + "key and keys each row by it",
                              fix: "add a primary key to \(table), \(fix)")
        }
    }

    /// The next chunk of `progress.current`, read on `connection` (which must not be in a transaction), and the
    /// WAL insert position taken with its snapshot (nil on a standby).
    public func readChunk(of table: TableInfo, progress: SnapshotProgress,
                          on connection: PostgresConnection) async throws -> (chunk: SnapshotChunk, walInsert: String?) {
        guard let current = progress.current else { throw PostgresError(message: "the snapshot has no table left to read") }
        let name = QualifiedName(schema: table.schema, name: table.name)
        let columns = table.columns.filter { !$0.isGenerated }
        let keyIndexes = table.primaryKey.compactMap { key in columns.firstIndex { $0.name == key } }
        guard !table.primaryKey.isEmpty, keyIndexes.count == table.primaryKey.count else {
            throw ConfigError(key: "source.snapshot", problem: "table \(name) has no primary key (or it is a generated column)",
                              fix: "add a primary key to \(name), or remove `source.snapshot: initial`")
        }
        let keyList = table.primaryKey.map(SQLText.identifier).joined(separator: ", ")
        var sql = "SELECT \(columns.map { SQLText.identifier($0.name) }.joined(separator: ", ")) FROM \(name.sql)"
        var parameters: [String?] = []
        var conditions: [String] = []
        if let lastKey = current.lastKey, lastKey.count == table.primaryKey.count {
            // A row comparison on the primary key: the key's index serves it, and the next chunk starts exactly
            // after the last row emitted however many rows were inserted or deleted before it meanwhile.
            conditions.append("(\(keyList)) > (\(lastKey.indices.map { "$\($0 + 1)" }.joined(separator: ", ")))")
            parameters = lastKey
        }
        // A backfill's `--where`, checked when it was requested; the transaction is read-only whatever it says.
        if let filter = progress.filter { conditions.append("(\(filter))") }
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY \(keyList) LIMIT \(chunkSize)"

        let tenant = tenantColumn(name)
        var rows: [SnapshotChunk.Row] = []
        rows.reserveCapacity(chunkSize)
        var rowNumber = current.rows
        let idPrefix = Array(progress.eventIDPrefix(table: name).utf8), positionPrefix = progress.positionPrefix(table: name)
        // One buffer for every row's id: the id is built in it and copied into a string once.
        var idBytes: [UInt8] = []
        idBytes.reserveCapacity(idPrefix.count + 64)
        func append(_ result: QueryResult) {
            for values in result.rows {
                var fields: [(name: String, value: JSONValue)] = []
                fields.reserveCapacity(columns.count)
                for (index, column) in columns.enumerated() {
                    fields.append((column.name, values[index].map { PGValueMapper.json(fromText: $0, kind: column.kind) } ?? .null))
                }
                var keyColumns: [(name: String, value: JSONValue)] = []
                keyColumns.reserveCapacity(keyIndexes.count)
                for index in keyIndexes { keyColumns.append(fields[index]) }  // by position, not looked up by name
                let key = JSONObject(fields: keyColumns)
                idBytes.removeAll(keepingCapacity: true)
                idBytes.append(contentsOf: idPrefix)
                JSONEncoding.write(key, into: &idBytes)
                let after = JSONObject(fields: fields)
                rowNumber += 1
                var event = ChangeEvent(
                    id: String(decoding: idBytes, as: UTF8.self), op: .read,
                    schema: table.schema, table: table.name, key: key, before: nil, after: after,
                    position: positionPrefix + String(rowNumber))
                if let tenant, let value = after[tenant], value != .null { event.tenant = value.plainText }
                rows.append(SnapshotChunk.Row(event: event, key: keyIndexes.map { values[$0] ?? "" }))
            }
        }

        try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        let visibility: PGSnapshot
        let walInsert: String?
        do {
            // The transaction's snapshot is taken by its first statement: this one, so the rows below show
            // exactly what it says.
            let taken = try await connection.query(
                "SELECT pg_current_snapshot()::text, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END")
            guard let text = taken.first?[0], let snapshot = PGSnapshot(text) else {
                throw PostgresError(message: "pg_current_snapshot() returned no snapshot")
            }
            visibility = snapshot
            walInsert = taken.first?[1]
            // Read through a cursor, a piece at a time, each FETCH sent before the previous piece is mapped and
            // received while it is: PostgreSQL reads and libpq parses the next rows while these become events.
            try await connection.query("DECLARE \(Self.cursorName) NO SCROLL CURSOR FOR \(sql)", parameters)
            let fetch = "FETCH FORWARD \(Self.fetchSize) FROM \(Self.cursorName)"
            var piece: QueryResult? = try await connection.query(fetch)
            while let fetched = piece {
                let isFull = fetched.rows.count == Self.fetchSize
                if isFull { try await connection.send(fetch) }
                async let following = isFull ? connection.receive() : nil
                append(fetched)
                piece = try await following
                if piece?.rows.isEmpty == true { piece = nil }
            }
            try await connection.execute("COMMIT")
        } catch {
            try? await connection.execute("ROLLBACK")
            throw error
        }
        return (SnapshotChunk(table: name, visibility: visibility, rows: rows), walInsert)
    }
}
