import CLibPQ
import Dispatch
import Foundation
import SpillwayCore
import Synchronization

/// A PostgreSQL error, from the server (with SQLSTATE) or from libpq. `description` is safe to log and to
/// store in `checkpoints.last_error`: libpq's messages name host and port, never the password, and the
/// server's DETAIL is left out because it can echo row values (a unique violation names the key, a check
/// violation the whole failing row). `debugDescription` has it, for a debugger, never for a log.
public struct PostgresError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    public var message: String
    public var sqlState: String?
    public var detail: String?
    public var hint: String?

    public init(message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil) {
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let hint { text += " Hint: \(hint)" }
        return text
    }

    public var debugDescription: String {
        description + (detail.map { " Detail: \($0)" } ?? "")
    }

    /// The server or the network went away: worth reconnecting, unlike a SQL error.
    public var isConnectionFailure: Bool {
        guard let sqlState else { return true }
        return sqlState.hasPrefix("08") || sqlState == "57P01" || sqlState == "57P02" || sqlState == "57P03"
    }
}

/// The rows of one statement, copied out of libpq's memory as text (the text format is what the value
/// mapper reads).
public struct QueryResult: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows a command affected (`PQcmdTuples`); 0 when it reports none.
    public var affectedRows: Int

    public subscript(row: Int, column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return rows[row][index]
    }

    public var first: [String?]? { rows.first }
}

/// The rows of one result where libpq holds them: values are read in place, without a `String` per value.
/// A value's bytes are valid while this result lives (hold it with `withExtendedLifetime` while reading).
public final class PostgresResult: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; libpq's PGresult is read-only and not tied to a connection.
    private let result: OpaquePointer
    public let count: Int
    public let columnCount: Int

    fileprivate init(_ result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        columnCount = Int(PQnfields(result))
    }

    deinit { PQclear(result) }

    /// The value's text-format bytes, or nil for SQL NULL.
    @inline(__always)
    public func value(row: Int, column: Int) -> UnsafeBufferPointer<UInt8>? {
        PostgresConnection.value(of: result, row: row, column: column)
    }

    public func string(row: Int, column: Int) -> String? {
        value(row: row, column: column).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// One libpq connection. Every call runs on the connection's own serial queue, never on Swift's cooperative
/// pool, because libpq blocks; the queue is also what makes the handle safe to share.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked Sendable: `handle` is touched only on `queue` (and in deinit, when no call can be pending).
    private let handle: OpaquePointer
    private let queue: DispatchQueue
    private var isClosed = false
    /// `PQstatus` as of the last call on `queue`, so `isHealthy` never waits behind a running query.
    private let lastKnownHealthy = Mutex(true)

    private init(handle: OpaquePointer, label: String) {
        self.handle = handle
        self.queue = DispatchQueue(label: "spillway.pg.\(label)")
    }

    deinit {
        if !isClosed { PQfinish(handle) }
    }

    /// The session settings that value text depends on, pinned on every connection Spillway opens (the
    /// replication one included: pgoutput renders values in the walsender with its session's settings), so
    /// neither `ALTER DATABASE … SET`, `ALTER ROLE … SET` nor `PGOPTIONS` changes what an event holds. The
    /// audit trigger pins the same list (`AuditLogSchema.captureFunctionSQL`).
    public static let pinnedSettings: [(name: String, value: String)] = [
        ("TimeZone", "UTC"), ("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"), ("extra_float_digits", "3"),
        ("bytea_output", "hex"), ("lc_monetary", "C"),
    ]

    static var pinnedSettingsSQL: String {
        pinnedSettings.map { "SET \($0.name) = '\($0.value)'" }.joined(separator: "; ")
    }

    /// How soon each end gives up on a connection whose network went silent (`deadAfter`): TCP keepalives every
    /// third of it, three missed, and `tcp_user_timeout` for data sent but never acknowledged (a keepalive is
    /// not sent while data is outstanding, so without it a cut peer holds the connection for the kernel's
    /// retransmission time, a quarter of an hour). Set on the client through libpq (before the URL's own
    /// keywords, which win) and on the server with `SET` (so the server ends the session, and frees its locks
    /// and its replication slot, about `deadAfter` after the client vanished).
    public struct NetworkTimeouts: Sendable, Equatable {
        public var deadAfter: Duration
        public init(deadAfter: Duration) { self.deadAfter = deadAfter }

        var probeSeconds: Int { max(1, Int(deadAfter.components.seconds) / 3) }
        var userTimeoutMilliseconds: Int64 { max(1000, deadAfter.components.seconds * 1000 + deadAfter.components.attoseconds / 1_000_000_000_000_000) }

        var clientKeywords: [(String, String)] {
            [("keepalives", "1"), ("keepalives_idle", "\(probeSeconds)"), ("keepalives_interval", "\(probeSeconds)"),
             ("keepalives_count", "3"), ("tcp_user_timeout", "\(userTimeoutMilliseconds)")]
        }

        var serverSettingsSQL: String {
            "SET tcp_keepalives_idle = \(probeSeconds); SET tcp_keepalives_interval = \(probeSeconds); "
                + "SET tcp_keepalives_count = 3; SET tcp_user_timeout = \(userTimeoutMilliseconds)"
        }
    }

    /// Connects and pins `pinnedSettings`, so the value mapper sees one text format. `url` is a libpq
    /// connection string or `postgres://` URL. With `timeouts`, both ends give up on a silent network.
    public static func connect(url: String, applicationName: String = "spillway",
                               replication: Bool = false, timeouts: NetworkTimeouts? = nil) async throws -> PostgresConnection {
        let handle: OpaquePointer = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let defaults = timeouts?.clientKeywords ?? []
                let keywords = defaults.map(\.0) + ["dbname", "application_name", "connect_timeout"] + (replication ? ["replication"] : [])
                let values = defaults.map(\.1) + [url, applicationName, "10"] + (replication ? ["database"] : [])
                let handle = withCStrings(keywords) { k in
                    withCStrings(values) { v in PQconnectdbParams(k, v, 1) }
                }
                guard let handle else {
                    continuation.resume(throwing: PostgresError(message: "libpq could not allocate a connection"))
                    return
                }
                guard PQstatus(handle) == CONNECTION_OK else {
                    let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
                    PQfinish(handle)
                    let configurationError = tlsConfigurationError(message) ?? poolerError(message, replication: replication)
                    continuation.resume(throwing: configurationError.map { $0 as any Error }
                        ?? PostgresError(message: "cannot connect to PostgreSQL: \(message)"))
                    return
                }
                continuation.resume(returning: handle)
            }
        }
        let connection = PostgresConnection(handle: handle, label: applicationName)
        // A walsender with `replication=database` takes SQL too, and these settings govern how pgoutput
        // renders values. NOTICEs (e.g. "trigger does not exist, skipping" from idempotent DDL) would
        // otherwise reach stderr raw.
        do {
            try await connection.execute(pinnedSettingsSQL + "; SET client_min_messages = warning"
                + (timeouts.map { "; " + $0.serverSettingsSQL } ?? ""))
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// Connects, runs `body`, and closes the connection however `body` ends.
    public static func withConnection<T>(url: String, applicationName: String, timeouts: NetworkTimeouts? = nil,
                                         _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await connect(url: url, applicationName: applicationName, timeouts: timeouts)
        let result: T
        do {
            result = try await body(connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return result
    }

    /// Runs one statement with text parameters (`$1`...). Parameters travel separately from the SQL, so no
    /// value is ever spliced into it.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> QueryResult {
        try await onQueue { handle in
            let result: OpaquePointer? = withOptionalCStrings(parameters) { values in
                PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
            }
            return try Self.consume(result, handle: handle)
        }
    }

    /// Sends one statement without waiting for its result, so the server works on it while the caller does
    /// something else; `receive` collects it. In between, nothing else may use the connection.
    public func send(_ sql: String) async throws {
        try await onQueue { handle in
            guard PQsendQuery(handle, sql) == 1 else { throw PostgresError(message: Self.errorMessage(handle)) }
        }
    }

    /// The result of the statement `send` sent (every result is drained, so the connection is usable after
    /// an error too).
    public func receive() async throws -> QueryResult {
        try await onQueue { handle in
            var outcome: Result<QueryResult, any Error>?
            while let result = PQgetResult(handle) {
                let consumed = Result { try Self.consume(result, handle: handle) }
                if outcome == nil { outcome = consumed }
            }
            guard let outcome else { throw PostgresError(message: "no result was pending: \(Self.errorMessage(handle))") }
            return try outcome.get()
        }
    }

    /// The result of the statement `send` sent, as libpq holds it (no value is copied out). When it has at
    /// least `next.ifRows` rows, `next.sql` is sent before this returns, so the server works on the next piece
    /// of a cursor while the caller reads this one.
    public func receiveResult(thenSending next: (sql: String, ifRows: Int)? = nil) async throws -> PostgresResult {
        try await onQueue { handle in
            var first: PostgresResult?
            var failure: (any Error)?
            while let result = PQgetResult(handle) {
                if first == nil, failure == nil {
                    if let error = Self.failure(of: result, handle: handle) { failure = error } else { first = PostgresResult(result); continue }
                }
                PQclear(result)
            }
            if let failure { throw failure }
            guard let first else { throw PostgresError(message: "no result was pending: \(Self.errorMessage(handle))") }
            if let next, first.count >= next.ifRows, PQsendQuery(handle, next.sql) != 1 {
                throw PostgresError(message: Self.errorMessage(handle))
            }
            return first
        }
    }

    /// Runs statements without parameters in one round trip and returns the rows of the last one that returned
    /// rows (`BEGIN; SELECT ...` opens a transaction with its first query; `BEGIN; SELECT ...; COMMIT` is a whole
    /// transaction whose SELECT is the answer). The first failing statement's error is thrown.
    @discardableResult
    public func queryScript(_ sql: String) async throws -> QueryResult {
        try await onQueue { handle in
            guard PQsendQuery(handle, sql) == 1 else { throw PostgresError(message: Self.errorMessage(handle)) }
            var answer: QueryResult?
            var failure: (any Error)?
            while let result = PQgetResult(handle) {
                let isRows = PQresultStatus(result) == PGRES_TUPLES_OK
                do {
                    let consumed = try Self.consume(result, handle: handle)
                    if isRows || answer == nil { answer = consumed }
                } catch {
                    if failure == nil { failure = error }
                }
            }
            if let failure { throw failure }
            guard let answer else { throw PostgresError(message: "no result: \(Self.errorMessage(handle))") }
            return answer
        }
    }

    /// Runs one or more statements without parameters (DDL scripts).
    public func execute(_ sql: String) async throws {
        try await onQueue { handle in
            _ = try Self.consume(PQexec(handle, sql), handle: handle)
        }
    }

    /// Waits until a NOTIFY arrives on a channel this connection LISTENs to, or `timeout` passes. Returns
    /// the number of notifications drained.
    public func waitForNotifications(timeout: Duration) async throws -> Int {
        try await onQueue { handle in
            var drained = Self.drainNotifications(handle)
            if drained > 0 { return drained }
            let socket = PQsocket(handle)
            guard socket >= 0 else { throw PostgresError(message: "connection lost while waiting for notifications") }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            let ready = poll(&descriptor, 1, max(0, millis))
            if ready > 0 {
                guard PQconsumeInput(handle) == 1 else {
                    throw PostgresError(message: "connection lost: \(Self.errorMessage(handle))")
                }
                drained = Self.drainNotifications(handle)
            }
            return drained
        }
    }

    /// A NOTIFY this connection received: its channel and payload.
    public struct Notification: Sendable, Hashable {
        public var channel: String
        public var payload: String
    }

    /// Waits until notifications arrive on channels this connection LISTENs to, or `timeout` passes, and
    /// returns them in arrival order (empty on timeout).
    public func notifications(timeout: Duration) async throws -> [Notification] {
        try await onQueue { handle in
            func take() -> [Notification] {
                var taken: [Notification] = []
                while let notification = PQnotifies(handle) {
                    taken.append(Notification(channel: String(cString: notification.pointee.relname),
                                              payload: String(cString: notification.pointee.extra)))
                    PQfreemem(notification)
                }
                return taken
            }
            guard PQconsumeInput(handle) == 1 else { throw PostgresError(message: "connection lost: \(Self.errorMessage(handle))") }
            var taken = take()
            if !taken.isEmpty { return taken }
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            if poll(&descriptor, 1, max(0, millis)) > 0 {
                guard PQconsumeInput(handle) == 1 else { throw PostgresError(message: "connection lost: \(Self.errorMessage(handle))") }
                taken = take()
            }
            return taken
        }
    }

    // MARK: Replication (CopyBoth)

    /// Sends `START_REPLICATION ...` and expects the server to switch to CopyBoth.
    public func startCopyBoth(_ sql: String) async throws {
        try await onQueue { handle in
            guard let result = PQexec(handle, sql) else { throw PostgresError(message: Self.errorMessage(handle)) }
            defer { PQclear(result) }
            guard PQresultStatus(result) == PGRES_COPY_BOTH else {
                func field(_ code: Character) -> String? {
                    PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
                }
                throw PostgresError(message: field("M") ?? Self.errorMessage(handle), sqlState: field("C"),
                                    detail: field("D"), hint: field("H"))
            }
        }
    }

    /// Up to `maximum` CopyData messages: all that are buffered, waiting at most `timeout` for the first.
    /// Empty when none arrived in time. Reading in bulk keeps the queue hop off the per-message path.
    public func readCopyData(maximum: Int, timeout: Duration) async throws -> [[UInt8]] {
        try await onQueue { handle in
            var messages: [[UInt8]] = []
            var waited = false
            while messages.count < maximum {
                var buffer: UnsafeMutablePointer<CChar>?
                let length = PQgetCopyData(handle, &buffer, 1)
                if length > 0, let buffer {
                    messages.append(Array(UnsafeRawBufferPointer(start: buffer, count: Int(length)).bindMemory(to: UInt8.self)))
                    PQfreemem(buffer)
                    continue
                }
                if length == 0 {
                    if !messages.isEmpty || waited { break }
                    let socket = PQsocket(handle)
                    var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                    let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
                    _ = poll(&descriptor, 1, max(0, millis))
                    waited = true
                    guard PQconsumeInput(handle) == 1 else {
                        throw PostgresError(message: "replication connection lost: \(Self.errorMessage(handle))")
                    }
                    continue
                }
                if length == -1 {
                    var message = "the server ended the replication stream"
                    while let result = PQgetResult(handle) {
                        if let error = PQresultErrorField(result, Int32(Character("M").asciiValue!)) {
                            message += ": " + String(cString: error)
                        }
                        PQclear(result)
                    }
                    throw PostgresError(message: message)
                }
                throw PostgresError(message: "replication stream failed: \(Self.errorMessage(handle))")
            }
            return messages
        }
    }

    /// Sends one CopyData message (a standby status update) and flushes it.
    public func sendCopyData(_ bytes: [UInt8]) async throws {
        try await onQueue { handle in
            let sent = bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
            }
            guard sent == 1, PQflush(handle) == 0 else {
                throw PostgresError(message: "cannot send to the replication stream: \(Self.errorMessage(handle))")
            }
        }
    }

    /// Whether the connection is still usable: a local check, no round trip, and no wait for the queue (a
    /// caller on the cooperative pool must not block behind a long query); as of the last call made on it.
    public var isHealthy: Bool {
        lastKnownHealthy.withLock { $0 }
    }

    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                if !self.isClosed {
                    self.isClosed = true
                    self.lastKnownHealthy.withLock { $0 = false }
                    PQfinish(self.handle)
                }
                continuation.resume()
            }
        }
    }

    // MARK: Internals

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                guard !self.isClosed else {
                    continuation.resume(throwing: PostgresError(message: "the connection is closed"))
                    return
                }
                let result = Result { try body(self.handle) }
                let healthy = PQstatus(self.handle) == CONNECTION_OK
                self.lastKnownHealthy.withLock { $0 = healthy }
                continuation.resume(with: result)
            }
        }
    }

    private static func errorMessage(_ handle: OpaquePointer) -> String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func drainNotifications(_ handle: OpaquePointer) -> Int {
        var count = 0
        while let notification = PQnotifies(handle) {
            PQfreemem(notification)
            count += 1
        }
        return count
    }

    private static func consume(_ result: OpaquePointer?, handle: OpaquePointer) throws -> QueryResult {
        guard let result else { throw PostgresError(message: errorMessage(handle)) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return QueryResult(columns: [], rows: [], affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0)
        case PGRES_TUPLES_OK:
            let columnCount = Int(PQnfields(result))
            let rowCount = Int(PQntuples(result))
            let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
            var rows: [[String?]] = []
            rows.reserveCapacity(rowCount)
            for row in 0..<rowCount {
                var values: [String?] = []
                values.reserveCapacity(columnCount)
                for column in 0..<columnCount {
                    values.append(value(of: result, row: row, column: column).map { String(decoding: $0, as: UTF8.self) })
                }
                rows.append(values)
            }
            return QueryResult(columns: columns, rows: rows, affectedRows: rowCount)
        default:
            throw failure(of: result, handle: handle) ?? PostgresError(message: errorMessage(handle))
        }
    }

    /// A value's text-format bytes in libpq's memory, or nil for SQL NULL.
    @inline(__always)
    fileprivate static func value(of result: OpaquePointer, row: Int, column: Int) -> UnsafeBufferPointer<UInt8>? {
        if PQgetisnull(result, Int32(row), Int32(column)) == 1 { return nil }
        // The length libpq already knows: no strlen over every value of every row.
        let start = UnsafeRawPointer(PQgetvalue(result, Int32(row), Int32(column))!).assumingMemoryBound(to: UInt8.self)
        return UnsafeBufferPointer(start: start, count: Int(PQgetlength(result, Int32(row), Int32(column))))
    }

    /// The error a result reports; nil when it succeeded.
    private static func failure(of result: OpaquePointer, handle: OpaquePointer) -> PostgresError? {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_TUPLES_OK:
            return nil
        default:
            func field(_ code: Character) -> String? {
                guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
                return String(cString: value)
            }
            let message = field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            return PostgresError(message: message.isEmpty ? errorMessage(handle) : message,
                                 sqlState: field("C"), detail: field("D"), hint: field("H"))
        }
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    return body(pointers.map { UnsafePointer($0) } + [nil])
}

private func withOptionalCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { $0.map { strdup($0) } ?? nil }
    defer { pointers.forEach { free($0) } }
    return body(pointers.map { UnsafePointer($0) })
}

/// A TLS handshake that failed verification (`sslmode=verify-ca`/`verify-full`) fails the same way on every
/// retry: it is a configuration problem (exit 2), not an outage to wait out. libpq's message names the reason
/// (the certificate, the host name, the root certificate file); it never holds the password.
func tlsConfigurationError(_ message: String) -> ConfigError? {
    let fixes: [(String, String)] = [
        ("certificate verify failed", "point sslrootcert= at the CA that signed the server's certificate"),
        ("does not match host name", "connect by a host name the server's certificate holds (subjectAltName), or fix the certificate"),
        ("root certificate file", "sslrootcert= must name a readable PEM file with the server's CA (or use sslmode=require to skip verification)"),
        ("server does not support SSL", "turn on ssl in the server's postgresql.conf, or lower sslmode"),
        ("certificate has expired", "renew the server's certificate"),
    ]
    guard let fix = fixes.first(where: { message.contains($0.0) })?.1 else { return nil }
    return ConfigError(key: "database.url", problem: "TLS: \(message)", fix: fix)
}

/// A connection pooler in front of the server refuses a replication connection: PgBouncer (before 1.23, and
/// later ones unless set up for it) answers the startup packet with "unsupported startup parameter:
/// replication". Retrying cannot help, so it is a configuration error.
func poolerError(_ message: String, replication: Bool) -> ConfigError? {
    guard replication, message.contains("unsupported startup parameter: replication") else { return nil }
    return ConfigError(key: "database.url",
                       problem: "it reaches a connection pooler, not PostgreSQL (\(message)); logical replication needs a direct connection",
                       fix: "point database.url at the PostgreSQL server itself (its own host and port), not at PgBouncer or another pooler; or use source.kind: audit_log, which works through a pooler in session mode")
}

extension HAConfig {
    /// The consumer's connections give up on a silent network after `ha.takeover`, the time a standby waits.
    public var networkTimeouts: PostgresConnection.NetworkTimeouts { .init(deadAfter: takeover) }
}
