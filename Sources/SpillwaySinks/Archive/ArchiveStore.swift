import SpillwayCore
import SpillwayPostgres

/// The archive table's SQL: shape, daily partitions, writes, retention, and the reads `spillway replay` makes.
///
/// One row per event and consumer, the event's JSON text exactly as it was delivered (so a replay sends the
/// same bytes), `seq` from one sequence in the order the sink was given the events, which is the order they
/// were delivered. The primary key (consumer, id, day) makes a redelivered event a no-op, so `seq` stays
/// that of its first delivery.
public struct ArchiveStore: Sendable {
    public let table: QualifiedName

    public init(table: QualifiedName) {
        self.table = table
    }

    var sequence: QualifiedName { QualifiedName(schema: table.schema, name: "\(table.name)_seq") }

    /// The partition that holds `day` (`YYYY-MM-DD`).
    func partition(_ day: String) -> QualifiedName {
        QualifiedName(schema: table.schema, name: "\(table.name)_p\(day.filter(\.isNumber))")
    }

    func createSQL() -> String {
        """
        CREATE SCHEMA IF NOT EXISTS \(SQLText.identifier(table.schema));
        CREATE SEQUENCE IF NOT EXISTS \(sequence.sql);
        CREATE TABLE IF NOT EXISTS \(table.sql) (
            consumer text NOT NULL,
            day date NOT NULL,
            seq bigint NOT NULL DEFAULT nextval('\(sequence.sql.replacingOccurrences(of: "'", with: "''"))'),
            id text NOT NULL,
            lsn pg_lsn,
            ordinal integer,
            commit_time timestamptz,
            schema_name text NOT NULL,
            table_name text NOT NULL,
            op text NOT NULL,
            event text NOT NULL,
            PRIMARY KEY (consumer, id, day)
        ) PARTITION BY RANGE (day);
        CREATE INDEX IF NOT EXISTS \(SQLText.identifier("\(table.name)_order_idx")) ON \(table.sql) (consumer, seq);
        """
    }

    func createPartitionSQL(_ day: String) -> String {
        let literal = SQLText.literal(day)
        return "CREATE TABLE IF NOT EXISTS \(partition(day).sql) PARTITION OF \(table.sql) "
            + "FOR VALUES FROM (\(literal)) TO ((\(literal)::date + 1))"
    }

    /// The day an event is filed under: its commit date (UTC), or nil for the server's current date.
    static func day(of event: ChangeEvent) -> String? {
        guard let time = event.commitTime, time.utf8.count >= 10 else { return nil }
        let day = String(time.prefix(10))
        let isDate = day.utf8.enumerated().allSatisfy { index, byte in
            index == 4 || index == 7 ? byte == UInt8(ascii: "-") : (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return isDate ? day : nil
    }

    /// A replication position (`LSN` or `LSN:index`, as events show it) as its commit LSN and the change's
    /// index in its transaction; nil if it is not one.
    public static func position(_ text: String) -> (lsn: String, ordinal: Int?)? {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, LSN(string: String(first)) != nil else { return nil }
        guard parts.count == 2 else { return (String(first), nil) }
        guard let ordinal = Int(parts[1]), ordinal >= 0 else { return nil }
        return (String(first), ordinal)
    }

    /// Inserts `events` in order; those already archived are skipped.
    static let insertSQL = """
        INSERT INTO %TABLE% (consumer, day, id, lsn, ordinal, commit_time, schema_name, table_name, op, event)
        SELECT $1, coalesce(e.day::date, (now() AT TIME ZONE 'UTC')::date), e.id, e.lsn::pg_lsn, e.ordinal::integer,
               e.commit_time::timestamptz, e.schema_name, e.table_name, e.op, e.event
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
             WITH ORDINALITY AS e(day, id, lsn, ordinal, commit_time, schema_name, table_name, op, event, n)
        ORDER BY e.n
        ON CONFLICT DO NOTHING
        """

    func insertSQL() -> String { Self.insertSQL.replacingOccurrences(of: "%TABLE%", with: table.sql) }

    /// The partitions whose whole day is older than `days` days before today (UTC).
    func expiredPartitionsSQL(days: Int) -> String {
        """
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = \(SQLText.literal(table.schema)) AND p.relname = \(SQLText.literal(table.name))
          AND c.relname ~ '_p[0-9]{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date - \(days)
        ORDER BY c.relname
        """
    }

    // MARK: - Replay

    /// What a replay window selects.
    public struct Window: Sendable {
        public enum Bound: Sendable {
            /// A commit LSN, and the index of a change in that transaction (nil: all of it).
            case position(lsn: String, ordinal: Int?)
            case time(String)
        }

        public var from: Bound
        public var until: Bound?
        public var table: QualifiedName?
        /// The highest `seq` when the replay started: what was archived later is not part of it.
        public var lastSequence: Int64

        public init(from: Bound, until: Bound?, table: QualifiedName?, lastSequence: Int64) {
            self.from = from
            self.until = until
            self.table = table
            self.lastSequence = lastSequence
        }
    }

    /// The oldest archived event of `consumer`: its position and commit time.
    public func oldest(consumer: String, on connection: PostgresConnection) async throws -> (position: String, lsn: String?, time: String?)? {
        let result = try await connection.query(
            "SELECT lsn::text, to_char(commit_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), event::json->>'position' FROM \(table.sql) "
                + "WHERE consumer = $1 ORDER BY seq LIMIT 1", [consumer])
        guard let row = result.first else { return nil }
        return (row[2] ?? "?", row[0], row[1])
    }

    /// The highest `seq` of `consumer` (0 if none).
    public func lastSequence(consumer: String, on connection: PostgresConnection) async throws -> Int64 {
        let result = try await connection.query("SELECT coalesce(max(seq), 0) FROM \(table.sql) WHERE consumer = $1", [consumer])
        return Int64(result.first?[0] ?? "0") ?? 0
    }

    /// Whether the archive table exists.
    public func exists(on connection: PostgresConnection) async throws -> Bool {
        let result = try await connection.query("SELECT to_regclass($1) IS NOT NULL", [table.sql])
        return result.first?[0] == "t"
    }

    /// Up to `limit` events of the window after `seq`, in delivery order.
    public func read(_ window: Window, consumer: String, after seq: Int64, limit: Int,
                     on connection: PostgresConnection) async throws -> [(seq: Int64, event: String)] {
        var conditions = ["consumer = $1", "seq > $2", "seq <= $3"]
        var parameters: [String?] = [consumer, String(seq), String(window.lastSequence)]
        func bind(_ value: String) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        switch window.from {
        case .position(let lsn, let ordinal):
            conditions.append("(lsn, coalesce(ordinal, 0)) >= (\(bind(lsn))::pg_lsn, \(bind(String(ordinal ?? 0)))::integer)")
        case .time(let time): conditions.append("commit_time >= \(bind(time))::timestamptz")
        }
        switch window.until {
        case .position(let lsn, let ordinal)?:
            conditions.append("(lsn, coalesce(ordinal, 0)) <= (\(bind(lsn))::pg_lsn, \(bind(String(ordinal ?? Int(Int32.max))))::integer)")
        case .time(let time)?: conditions.append("commit_time <= \(bind(time))::timestamptz")
        case nil: break
        }
        if let table = window.table {
            conditions.append("schema_name = \(bind(table.schema)) AND table_name = \(bind(table.name))")
        }
        let result = try await connection.query(
            "SELECT seq, event FROM \(table.sql) WHERE \(conditions.joined(separator: " AND ")) ORDER BY consumer, seq LIMIT \(limit)",
            parameters)
        return result.rows.compactMap { row in
            guard let seq = row[0].flatMap({ Int64($0) }), let event = row[1] else { return nil }
            return (seq, event)
        }
    }
}
