import Foundation
import SpillwayCore
import SpillwayPostgres

/// `spillway backfill`: checks a request (the table is captured and has a primary key, the condition parses
/// against it), queues it in `<schema>.backfills`, and optionally follows it to the end.
public enum BackfillRequest {
    public static func queue(config: SpillwayConfig, table text: String, filter: String?) async throws -> BackfillStore.Request {
        guard let table = QualifiedName(parsing: text) else {
            throw ConfigError(key: "--table", problem: "'\(text)' is not a table name", fix: "write schema.table, e.g. public.products")
        }
        guard config.source.tables.contains(table) else {
            throw ConfigError(key: "--table", problem: "table \(table) is not in source.tables",
                              fix: "backfill one of \(config.source.tables.map(\.description).joined(separator: ", ")), or add it to source.tables and run `spillway install`")
        }
        if let filter, filter.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ConfigError(key: "--where", problem: "is empty", fix: "leave --where out to backfill every row")
        }
        return try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-backfill") { connection in
            let store = BackfillStore(schema: config.schema)
            guard try await store.exists(on: connection),
                  try await CheckpointStore(schema: config.schema).load(consumer: config.consumer, on: connection) != nil else {
                throw ConfigError(key: "consumer", problem: "consumer '\(config.consumer)' is not installed (or installed before backfills)",
                                  fix: "run `spillway install --config FILE` first")
            }
            guard try await PostgresCatalog.tableExists(table, on: connection) else {
                throw ConfigError(key: "--table", problem: "table \(table) does not exist", fix: "create it, or correct the name")
            }
            try await SnapshotChunkReader.requirePrimaryKeys(of: [table], on: connection, key: "--table",
                                                             fix: "or rebuild it from the table another way: a backfill needs one")
            let estimate = try await estimateRows(of: table, filter: filter, on: connection)
            let id = try await store.request(consumer: config.consumer, table: table, filter: filter, estimate: estimate, on: connection)
            guard let request = try await store.request(id: id, on: connection) else { throw PostgresError(message: "backfill \(id) vanished") }
            return request
        }
    }

    /// The planner's row estimate of the rows to read; a condition that does not parse or names no column of
    /// the table is an error naming `--where`, before anything is queued.
    private static func estimateRows(of table: QualifiedName, filter: String?, on connection: PostgresConnection) async throws -> Int64 {
        let sql = "EXPLAIN (FORMAT JSON) SELECT 1 FROM \(table.sql)" + (filter.map { " WHERE (\($0))" } ?? "")
        try await connection.execute("BEGIN READ ONLY")
        let plan: QueryResult
        do {
            plan = try await connection.query(sql)
            try await connection.execute("COMMIT")
        } catch let error as PostgresError {
            try? await connection.execute("ROLLBACK")
            guard filter != nil else { throw error }
            throw ConfigError(key: "--where", problem: "is not a condition on \(table): \(error.message)",
                              fix: "write a SQL boolean expression over the table's columns, e.g. --where \"id > 1000\"")
        }
        guard let text = plan.first?[0], case .array(let plans)? = try? JSONParser.parse(text),
              case .object(let top)? = plans.first, case .object(let node)? = top["Plan"],
              case .number(let rows)? = node["Plan Rows"] else { return 0 }
        return Int64(Double(rows) ?? 0)
    }

    /// Prints the request's progress until it is done: a bar redrawn in place on a terminal, a line every few
    /// seconds otherwise.
    public static func follow(id: Int64, config: SpillwayConfig) async throws {
        let isTerminal = isatty(STDERR_FILENO) == 1
        var lastLine = ContinuousClock.now - .seconds(10)
        try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-backfill") { connection in
            let store = BackfillStore(schema: config.schema)
            while true {
                guard let request = try await store.request(id: id, on: connection) else {
                    throw FatalError("backfill \(id) is gone from \(store.table)")
                }
                let line = progressLine(request)
                if isTerminal {
                    FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
                } else if ContinuousClock.now - lastLine >= .seconds(5) || request.state == .done {
                    FileHandle.standardError.write(Data("\(line)\n".utf8))
                    lastLine = .now
                }
                if request.state == .done {
                    if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
                    return
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// `[#########...........] 45% 45000/100000 rows, 12000 rows/s, ETA 5 s`
    public static func progressLine(_ request: BackfillStore.Request) -> String {
        let total = max(request.rowsEstimated, request.rows, 1)
        let fraction = request.state == .done ? 1 : min(1, Double(request.rows) / Double(total))
        let filled = Int((fraction * 20).rounded(.down))
        var line = "backfill \(request.id) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: 20 - filled))] "
            + "\(Int(fraction * 100))% \(request.rows)/\(request.state == .done ? request.rows : total) rows"
        switch request.state {
        case .queued: line += ", queued (is `spillway run` running for this consumer?)"
        case .running, .done:
            if let rate = request.rate { line += ", \(Int(rate)) rows/s" }
            if request.state == .done { line += ", done" } else if let eta = request.etaSeconds { line += ", ETA \(Int(eta.rounded())) s" }
        }
        return line
    }
}
