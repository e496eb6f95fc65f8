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

        var mapper = ChunkRowMapper(table: table, columns: columns, keyIndexes: keyIndexes, tenant: tenantColumn(name),
                                    idPrefix: progress.eventIDPrefix(table: name), positionPrefix: progress.positionPrefix(table: name),
                                    firstRowNumber: current.rows, capacity: chunkSize)

        let visibility: PGSnapshot
        let walInsert: String?
        do {
            // The transaction's snapshot is taken by its first statement: this one, so the rows below show
            // exactly what it says. One round trip for both: a chunk's fixed cost is a few of them.
            let taken = try await connection.queryScript(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                    + "SELECT pg_current_snapshot()::text, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END")
            guard let text = taken.first?[0], let snapshot = PGSnapshot(text) else {
                throw PostgresError(message: "pg_current_snapshot() returned no snapshot")
            }
            visibility = snapshot
            walInsert = taken.first?[1]
            // Read through a cursor, a piece at a time: each FETCH is sent before the previous piece is mapped,
            // so PostgreSQL reads the next rows while these become events (read where libpq holds them).
            try await connection.query("DECLARE \(Self.cursorName) NO SCROLL CURSOR FOR \(sql)", parameters)
            let fetch = "FETCH FORWARD \(Self.fetchSize) FROM \(Self.cursorName)"
            try await connection.send(fetch)
            var received = 0
            while true {
                // No FETCH after the one that completes the chunk: the cursor's LIMIT says nothing follows.
                let next = received + Self.fetchSize < chunkSize ? (fetch, Self.fetchSize) : nil
                let piece = try await connection.receiveResult(thenSending: next)
                withExtendedLifetime(piece) { mapper.append(piece) }
                received += piece.count
                if piece.count < Self.fetchSize || next == nil { break }
            }
            try await connection.execute("COMMIT")
        } catch {
            try? await connection.execute("ROLLBACK")
            throw error
        }
        return (SnapshotChunk(table: name, visibility: visibility, rows: mapper.takeRows()), walInsert)
    }
}

/// Makes a chunk's `read` events from its rows as libpq holds them, one FETCH after another.
private struct ChunkRowMapper {
    private let table: TableInfo
    private let columns: [ColumnInfo]
    private let keyIndexes: [Int]
    private let tenantIndex: Int?
    private let idPrefix: [UInt8]
    private let positionPrefix: String
    private var rowNumber: Int64
    private var rows: [SnapshotChunk.Row] = []
    /// One buffer for every row's id: the id is built in it and copied into a string once.
    private var idBytes: [UInt8] = []

    init(table: TableInfo, columns: [ColumnInfo], keyIndexes: [Int], tenant: String?, idPrefix: String,
         positionPrefix: String, firstRowNumber: Int64, capacity: Int) {
        self.table = table
        self.columns = columns
        self.keyIndexes = keyIndexes
        self.tenantIndex = tenant.flatMap { tenant in columns.firstIndex { $0.name == tenant } }
        self.idPrefix = Array(idPrefix.utf8)
        self.positionPrefix = positionPrefix
        self.rowNumber = firstRowNumber
        rows.reserveCapacity(capacity)
        idBytes.reserveCapacity(self.idPrefix.count + 64)
    }

    /// Maps every row of one FETCH.
    mutating func append(_ result: PostgresResult) {
        for row in 0..<result.count {
            var fields: [(name: String, value: JSONValue)] = []
            fields.reserveCapacity(columns.count)
            for (index, column) in columns.enumerated() {
                fields.append((column.name, result.value(row: row, column: index).map { PGValueMapper.json(fromText: $0, kind: column.kind) } ?? .null))
            }
            var keyColumns: [(name: String, value: JSONValue)] = []
            keyColumns.reserveCapacity(keyIndexes.count)
            for index in keyIndexes { keyColumns.append(fields[index]) }  // by position, not looked up by name
            let key = JSONObject(fields: keyColumns)
            idBytes.removeAll(keepingCapacity: true)
            idBytes.append(contentsOf: idPrefix)
            JSONEncoding.write(key, into: &idBytes)
            rowNumber += 1
            var event = ChangeEvent(
                id: String(decoding: idBytes, as: UTF8.self), op: .read,
                schema: table.schema, table: table.name, key: key, before: nil, after: JSONObject(fields: fields),
                position: positionPrefix + String(rowNumber))
            if let tenantIndex, fields[tenantIndex].value != .null { event.tenant = fields[tenantIndex].value.plainText }
            if keyIndexes.count == 1 {
                rows.append(SnapshotChunk.Row(event: event, singleKey: result.string(row: row, column: keyIndexes[0]) ?? ""))
            } else {
                rows.append(SnapshotChunk.Row(event: event, key: keyIndexes.map { result.string(row: row, column: $0) ?? "" }))
            }
        }
    }

    mutating func takeRows() -> [SnapshotChunk.Row] {
        var taken: [SnapshotChunk.Row] = []
        swap(&taken, &rows)
        return taken
    }
}
