import Foundation
import SpillwayCore

/// One event a sink gave up on (the destination rejected it), kept in `<schema>.dead_letters` for
/// `spillway dead-letters list|retry|drop`.
public struct DeadLetter: Sendable {
    public var id: Int64
    public var sink: String
    /// The event JSON as delivered.
    public var event: String
    /// The destination's answer, e.g. the HTTP status; nil when there was none.
    public var status: Int?
    /// The first 1 KB of the destination's answer (or the error).
    public var responseExcerpt: String
    public var attempts: Int
    public var firstAttemptAt: String
    public var lastAttemptAt: String

    /// The event's `id` field, for listings.
    public var eventID: String {
        (try? JSONParser.parse(event))?.objectValue?["id"]?.stringValue ?? "?"
    }

    public var json: JSONValue {
        .object(JSONObject([
            ("id", .integer(id)), ("sink", .string(sink)), ("event_id", .string(eventID)),
            ("status", status.map { .integer($0) } ?? .null), ("attempts", .integer(attempts)),
            ("first_attempt_at", .string(firstAttemptAt)), ("last_attempt_at", .string(lastAttemptAt)),
            ("response", .string(responseExcerpt)),
            ("event", (try? JSONParser.parse(event)) ?? .string(event)),
        ]))
    }
}

/// Reads and writes `<schema>.dead_letters`. Created by `spillway install` and, when missing, by a sink
/// that dead-letters on start.
public struct DeadLetterStore: Sendable {
    public let schema: String

    public init(schema: String) { self.schema = schema }

    public var table: String { "\(SQLText.identifier(schema)).dead_letters" }

    /// Idempotent DDL; part of `install`'s schema script.
    public static func createTableSQL(schema: String) -> String {
        let table = "\(SQLText.identifier(schema)).dead_letters"
        return """
            CREATE TABLE IF NOT EXISTS \(table) (
                id bigserial PRIMARY KEY,
                sink text NOT NULL,
                event jsonb NOT NULL,
                status int,
                response_excerpt text NOT NULL DEFAULT '',
                attempts int NOT NULL,
                first_attempt_at timestamptz NOT NULL,
                last_attempt_at timestamptz NOT NULL
            );
            CREATE INDEX IF NOT EXISTS dead_letters_sink_idx ON \(table) (sink, id);
            """
    }

    public func createTable(on connection: PostgresConnection) async throws {
        try await connection.execute("CREATE SCHEMA IF NOT EXISTS \(SQLText.identifier(schema));" + Self.createTableSQL(schema: schema))
    }

    /// At most 1 KB (whole UTF-8 characters), so a large error page does not bloat the table.
    public static func excerpt(_ text: String) -> String {
        var out = ""
        var bytes = 0
        for character in text {
            bytes += character.utf8.count
            if bytes > 1024 { break }
            out.append(character)
        }
        return out.replacingOccurrences(of: "\u{0}", with: "")
    }

    public func insert(sink: String, event: String, status: Int?, response: String, attempts: Int,
                       firstAttemptAt: Date, lastAttemptAt: Date, on connection: PostgresConnection) async throws {
        try await connection.query(
            "INSERT INTO \(table) (sink, event, status, response_excerpt, attempts, first_attempt_at, last_attempt_at) "
                + "VALUES ($1, $2::jsonb, $3::int, $4, $5::int, to_timestamp($6::float8), to_timestamp($7::float8))",
            [sink, event, status.map(String.init), Self.excerpt(response), String(attempts),
             String(firstAttemptAt.timeIntervalSince1970), String(lastAttemptAt.timeIntervalSince1970)])
    }

    /// Oldest first; `sink` and `id` narrow it.
    public func list(sink: String? = nil, id: Int64? = nil, on connection: PostgresConnection) async throws -> [DeadLetter] {
        let result = try await connection.query(
            "SELECT id, sink, event::text, status, response_excerpt, attempts, "
                + "to_char(first_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                + "to_char(last_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                + "FROM \(table) WHERE ($1::text IS NULL OR sink = $1) AND ($2::bigint IS NULL OR id = $2) ORDER BY id",
            [sink, id.map(String.init)])
        return result.rows.map { row in
            DeadLetter(id: Int64(row[0] ?? "") ?? 0, sink: row[1] ?? "", event: row[2] ?? "null", status: row[3].flatMap { Int($0) },
                       responseExcerpt: row[4] ?? "", attempts: Int(row[5] ?? "") ?? 0,
                       firstAttemptAt: row[6] ?? "", lastAttemptAt: row[7] ?? "")
        }
    }

    /// After a failed retry: one more attempt, the new answer.
    public func recordAttempt(id: Int64, status: Int?, response: String, on connection: PostgresConnection) async throws {
        try await connection.query(
            "UPDATE \(table) SET attempts = attempts + 1, status = $2::int, response_excerpt = $3, last_attempt_at = now() WHERE id = $1::bigint",
            [String(id), status.map(String.init), Self.excerpt(response)])
    }

    /// Returns how many rows went.
    @discardableResult
    public func delete(sink: String? = nil, id: Int64? = nil, on connection: PostgresConnection) async throws -> Int {
        let result = try await connection.query(
            "DELETE FROM \(table) WHERE ($1::text IS NULL OR sink = $1) AND ($2::bigint IS NULL OR id = $2)",
            [sink, id.map(String.init)])
        return result.affectedRows
    }
}
