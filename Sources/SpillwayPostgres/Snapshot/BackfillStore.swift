import SpillwayCore

/// Backfill requests (`spillway backfill`), one row each in `<schema>.backfills`: queued by the command, taken
/// one at a time in id order by the consumer's running `run`, which re-emits the table's rows as `read` events
/// and records its progress here. They survive restarts: the running one resumes from the checkpoint.
public struct BackfillStore: Sendable {
    public let table: String

    public init(schema: String) {
        table = "\(SQLText.identifier(schema)).backfills"
    }

    public enum State: String, Sendable, CaseIterable {
        case queued, running, done
    }

    public struct Request: Sendable, Equatable {
        public var id: Int64
        public var consumer: String
        public var table: QualifiedName
        public var filter: String?
        public var state: State
        public var rows: Int64
        public var rowsEstimated: Int64
        /// Seconds since it started (nil while queued): the rate and ETA come from it.
        public var runningSeconds: Double?
        public var requestedAt: String
        public var finishedAt: String?

        /// Rows a second so far.
        public var rate: Double? {
            guard let runningSeconds, runningSeconds > 0, state == .running || state == .done else { return nil }
            return Double(rows) / runningSeconds
        }

        /// Seconds left at the rate so far (nil until it runs; 0 once done).
        public var etaSeconds: Double? {
            if state == .done { return 0 }
            guard let rate, rate > 0 else { return nil }
            return Double(max(0, rowsEstimated - rows)) / rate
        }
    }

    static func createTableSQL(schema: String) -> String {
        let table = "\(SQLText.identifier(schema)).backfills"
        return """
            CREATE TABLE IF NOT EXISTS \(table) (
                id bigserial PRIMARY KEY,
                consumer text NOT NULL,
                schema_name text NOT NULL,
                table_name text NOT NULL,
                filter text,
                state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done')),
                rows bigint NOT NULL DEFAULT 0,
                rows_estimated bigint NOT NULL DEFAULT 0,
                requested_at timestamptz NOT NULL DEFAULT now(),
                started_at timestamptz,
                updated_at timestamptz,
                finished_at timestamptz
            );
            """
    }

    /// Queues a request; returns its id.
    public func request(consumer: String, table: QualifiedName, filter: String?, estimate: Int64,
                        on connection: PostgresConnection) async throws -> Int64 {
        let result = try await connection.query(
            "INSERT INTO \(self.table) (consumer, schema_name, table_name, filter, rows_estimated) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            [consumer, table.schema, table.name, filter, String(estimate)])
        guard let id = result.first?[0].flatMap({ Int64($0) }) else { throw PostgresError(message: "no backfill id returned") }
        return id
    }

    /// The request to work on: the running one, else the oldest queued; nil when none, or when the table does
    /// not exist yet (a schema from before backfills).
    public func next(consumer: String, on connection: PostgresConnection) async throws -> Request? {
        try await requests(consumer: consumer, where: "state <> 'done'", limit: 1, on: connection).first
    }

    public func all(consumer: String, on connection: PostgresConnection) async throws -> [Request] {
        try await requests(consumer: consumer, where: "true", limit: 1000, on: connection)
    }

    public func request(id: Int64, on connection: PostgresConnection) async throws -> Request? {
        try await requests(consumer: nil, where: "id = \(id)", limit: 1, on: connection).first
    }

    private func requests(consumer: String?, where condition: String, limit: Int, on connection: PostgresConnection) async throws -> [Request] {
        let result = try await connection.query(
            """
            SELECT id, consumer, schema_name, table_name, filter, state, rows, rows_estimated,
                   extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8,
                   to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                   to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            FROM \(table) WHERE ($1::text IS NULL OR consumer = $1) AND \(condition) ORDER BY id LIMIT \(limit)
            """, [consumer])
        return result.rows.compactMap { row in
            guard let id = row[0].flatMap({ Int64($0) }), let state = row[5].flatMap(State.init(rawValue:)) else { return nil }
            return Request(id: id, consumer: row[1] ?? "", table: QualifiedName(schema: row[2] ?? "", name: row[3] ?? ""), filter: row[4],
                           state: state, rows: Int64(row[6] ?? "0") ?? 0, rowsEstimated: Int64(row[7] ?? "0") ?? 0,
                           runningSeconds: row[8].flatMap { Double($0) }, requestedAt: row[9] ?? "", finishedAt: row[10])
        }
    }

    /// Whether `<schema>.backfills` exists (an older schema has none until `install` runs again).
    public func exists(on connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT to_regclass($1) IS NOT NULL", [table]).first?[0] == "t"
    }

    /// Whether this session may take requests: the table exists and it may read and update it.
    public func isReadable(on connection: PostgresConnection) async throws -> (exists: Bool, granted: Bool) {
        let result = try await connection.query(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass($1) IS NOT NULL AND has_table_privilege(to_regclass($1), 'SELECT, UPDATE')", [table])
        return (result.first?[0] == "t", result.first?[1] == "t")
    }

    public func markRunning(_ id: Int64, on connection: PostgresConnection) async throws {
        try await connection.query(
            "UPDATE \(table) SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now() WHERE id = $1 AND state = 'queued'",
            [String(id)])
    }

    /// Records a saved checkpoint's progress of the request; `done` once its last chunk is saved.
    public func record(_ id: Int64, rows: Int64, done: Bool, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            UPDATE \(table) SET rows = $2::bigint, updated_at = now(), rows_estimated = greatest(rows_estimated, $2::bigint),
                state = CASE WHEN $3::boolean THEN 'done' ELSE 'running' END,
                finished_at = CASE WHEN $3::boolean THEN now() ELSE finished_at END
            WHERE id = $1::bigint AND state <> 'done'
            """, [String(id), String(rows), done ? "true" : "false"])
    }
}
