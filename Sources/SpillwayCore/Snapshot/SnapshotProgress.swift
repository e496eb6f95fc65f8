/// How far a consumer's table snapshot (`source.snapshot: initial`) has come: per captured table, the primary
/// key of the last row emitted and how many rows that was. Saved in the consumer's checkpoint row, in the same
/// statement as the stream position, so a restart resumes from the last acknowledged chunk and never re-reads
/// a chunk against a stream position older than the one it was emitted at.
public struct SnapshotProgress: Sendable, Hashable {
    /// Counts the snapshots taken for this consumer; part of every `read` event's id, so a later snapshot of
    /// the same row is a new event, not a duplicate to drop.
    public var generation: Int
    public var tables: [Table]
    /// Set for a backfill (`spillway backfill`): its request's id in `<schema>.backfills`, and its `--where`.
    public var backfill: Int64?
    public var filter: String?

    public struct Table: Sendable, Hashable {
        public var name: QualifiedName
        /// The primary-key values (text form, in key order) of the last row emitted; nil before the first chunk.
        public var lastKey: [String]?
        public var rows: Int64
        public var isDone: Bool

        public init(name: QualifiedName, lastKey: [String]? = nil, rows: Int64 = 0, isDone: Bool = false) {
            self.name = name
            self.lastKey = lastKey
            self.rows = rows
            self.isDone = isDone
        }
    }

    public init(generation: Int = 1, tables: [QualifiedName]) {
        self.generation = generation
        self.tables = tables.map { Table(name: $0) }
    }

    public init(generation: Int, tables: [Table], backfill: Int64? = nil, filter: String? = nil) {
        self.generation = generation
        self.tables = tables
        self.backfill = backfill
        self.filter = filter
    }

    /// A backfill of `table` (request `id`), rows matching `filter` (SQL) or all.
    public static func backfill(id: Int64, table: QualifiedName, filter: String?) -> SnapshotProgress {
        SnapshotProgress(generation: 1, tables: [Table(name: table)], backfill: id, filter: filter)
    }

    public var isDone: Bool { tables.allSatisfy(\.isDone) }

    /// The table the next chunk is read from.
    public var current: Table? { tables.first { !$0.isDone } }

    /// The id of the `read` event of the row keyed `key` (its JSON): the same row read again by the same
    /// snapshot (after a restart) keeps its id; a row's id never names another row.
    public func eventID(table: QualifiedName, key: String) -> String {
        eventIDPrefix(table: table) + key
    }

    /// `eventID` without its key: built once per chunk, not per row.
    public func eventIDPrefix(table: QualifiedName) -> String {
        if let backfill { return "backfill-\(backfill):\(table):" }
        return "snapshot-\(generation):\(table):"
    }

    /// `snapshot/GENERATION/schema.table/ROWS` (`backfill/ID/...`): where a read event sits (the row count up to
    /// and including it).
    public func position(table: QualifiedName, row: Int64) -> String {
        positionPrefix(table: table) + String(row)
    }

    public func positionPrefix(table: QualifiedName) -> String {
        if let backfill { return "backfill/\(backfill)/\(table)/" }
        return "snapshot/\(generation)/\(table)/"
    }
}

// MARK: - Stored form

extension SnapshotProgress {
    /// The JSON stored in `checkpoints.snapshot_progress`:
    /// `{"generation":1,"tables":[{"table":"public.t","last_key":["42"],"rows":42,"done":false}]}`; a backfill
    /// adds `"backfill": ID` and `"where": SQL`.
    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("generation", .integer(generation))]
        if let backfill { fields.append(("backfill", .integer(backfill))) }
        if let filter { fields.append(("where", .string(filter))) }
        return .object(JSONObject(fields + [
            ("tables", .array(tables.map { table in
                .object(JSONObject([
                    ("table", .string(table.name.description)),
                    ("schema_name", .string(table.name.schema)),
                    ("table_name", .string(table.name.name)),
                    ("last_key", table.lastKey.map { .array($0.map(JSONValue.string)) } ?? .null),
                    ("rows", .integer(table.rows)),
                    ("done", .bool(table.isDone)),
                ]))
            })),
        ]))
    }

    public init?(json text: String) {
        guard case .object(let object)? = try? JSONParser.parse(text),
              case .number(let generation)? = object["generation"], let generationValue = Int(generation),
              case .array(let items)? = object["tables"] else { return nil }
        var tables: [Table] = []
        for item in items {
            guard case .object(let table) = item, let schema = table["schema_name"]?.stringValue,
                  let name = table["table_name"]?.stringValue,
                  case .number(let rows)? = table["rows"], let rowCount = Int64(rows),
                  case .bool(let done)? = table["done"] else { return nil }
            var lastKey: [String]?
            if case .array(let values)? = table["last_key"] {
                lastKey = values.compactMap(\.stringValue)
                guard lastKey?.count == values.count else { return nil }
            }
            tables.append(Table(name: QualifiedName(schema: schema, name: name), lastKey: lastKey, rows: rowCount, isDone: done))
        }
        var backfill: Int64?
        if case .number(let id)? = object["backfill"] { backfill = Int64(id) }
        self.init(generation: generationValue, tables: tables, backfill: backfill, filter: object["where"]?.stringValue)
    }
}
