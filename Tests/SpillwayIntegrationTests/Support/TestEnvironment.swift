import Foundation
import Logging
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

/// What the test command (scripts/test.sh) provides: a real PostgreSQL server and the built binary.
enum TestEnvironment {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `SPILLWAY_TEST_DATABASE_URL`: a superuser URL of a server with wal_level=logical.
    static var databaseURL: String? { environment["SPILLWAY_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// Set by the test command: a missing server is then a failure, never a silent skip.
    static var isIntegrationRequired: Bool { environment["SPILLWAY_REQUIRE_INTEGRATION"] == "1" }

    static var canRun: Bool { databaseURL != nil || isIntegrationRequired }

    static var binary: String {
        if let explicit = environment["SPILLWAY_BIN"], !explicit.isEmpty { return explicit }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("spillway").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        return FileManager.default.currentDirectoryPath + "/.build/debug/spillway"
    }

    static var pgBin: String {
        if let explicit = environment["PG_BIN"], !explicit.isEmpty { return explicit }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        return versions.first.map { "\(root)/\($0)/bin" } ?? "/usr/bin"
    }

    static let logger: Logger = {
        var logger = Logger(label: "spillway.tests")
        logger.logLevel = .warning
        return logger
    }()
}

/// A database of its own for one test, created on the test server and dropped afterwards.
struct TestDatabase: Sendable {
    let name: String
    let url: String

    static func create(_ label: String = #function) async throws -> TestDatabase {
        let base = try #require(TestEnvironment.databaseURL, "SPILLWAY_TEST_DATABASE_URL is not set: run the tests through scripts/test.sh")
        let name = "t_" + label.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(30) + "_\(UInt32.random(in: 0...UInt32.max))"
        let admin = try await PostgresConnection.connect(url: base, applicationName: "spillway-tests")
        try await admin.execute("CREATE DATABASE \(SQLText.identifier(name))")
        await admin.close()
        return TestDatabase(name: name, url: Self.replacingDatabase(in: base, with: name))
    }

    /// A connection to this database; inside a `TestScope` it is closed when the scope ends.
    func connect() async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(url: url, applicationName: "spillway-tests")
        TestScope.current?.onExit { await connection.close() }
        return connection
    }

    /// Slots are cluster-wide: each test database gets its own slot names.
    func slotName(consumer: String) -> String {
        String("s_\(name)_\(consumer)".lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(63))
    }

    func drop() async {
        guard let base = TestEnvironment.databaseURL,
              let admin = try? await PostgresConnection.connect(url: base, applicationName: "spillway-tests") else { return }
        _ = try? await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name])
        _ = try? await admin.query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL", [name])
        try? await Task.sleep(for: .milliseconds(100))
        _ = try? await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1", [name])
        _ = try? await admin.execute("DROP DATABASE IF EXISTS \(SQLText.identifier(name))")
        await admin.close()
    }

    /// `postgres://u@h:p/db?x` → same URL on database `name`.
    static func replacingDatabase(in url: String, with name: String) -> String {
        guard let scheme = url.range(of: "://") else { return "\(url) dbname=\(name)" }
        let rest = url[scheme.upperBound...]
        let query = rest.firstIndex(of: "?").map { String(rest[$0...]) } ?? ""
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        return String(url[..<scheme.upperBound]) + rest[..<authorityEnd] + "/" + name + query
    }

    /// The YAML of a one-file-sink config for this database.
    func yaml(tables: [String], consumer: String, kind: String, sinkPath: String, extraSource: String) -> String {
        """
        database:
          url: \(url)
        consumer: \(consumer)
        source:
          kind: \(kind)
          tables: [\(tables.joined(separator: ", "))]
          poll_interval: 100ms
          slot: \(slotName(consumer: consumer))
        \(extraSource)
        sinks:
          - name: out
            kind: file
            path: \(sinkPath)
        """
    }

    /// A config file for this database, in a fresh temp dir; returns its path and the JSONL sink's path.
    func writeConfig(tables: [String] = ["public.products"], consumer: String = "tests", kind: String = "audit_log",
                     extraSource: String = "", sinkPath: String? = nil, directory: URL? = nil) throws -> (config: String, sink: String) {
        let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("spillway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let sink = sinkPath ?? dir.appendingPathComponent("\(consumer).jsonl").path
        let path = dir.appendingPathComponent("\(consumer).yaml").path
        try yaml(tables: tables, consumer: consumer, kind: kind, sinkPath: sink, extraSource: extraSource)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return (path, sink)
    }

    func config(tables: [String] = ["public.products"], consumer: String = "tests", kind: String = "audit_log", sinkPath: String,
                extraSource: String = "") throws -> SpillwayConfig {
        try SpillwayConfig.parse(yaml: yaml(tables: tables, consumer: consumer, kind: kind, sinkPath: sinkPath, extraSource: extraSource))
    }
}

/// Runs Spillway in-process until everything committed so far is delivered.
/// At most `timeout`: a sink that never recovers would otherwise retry, and hold the test run, forever.
func drainOnce(_ config: SpillwayConfig, timeout: Duration = .seconds(120)) async throws {
    let routes = try await SinkFactory.makeRoutes(config)
    let pipeline = PipelineFactory.make(config, fanout: Fanout(routes: routes, logger: TestEnvironment.logger),
                                        options: .init(once: true), logger: TestEnvironment.logger)
    struct DrainTimedOut: Error, CustomStringConvertible {
        let timeout: Duration
        var description: String { "drainOnce did not finish within \(timeout)" }
    }
    do {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await pipeline.run(); return true }
            group.addTask { try await Task.sleep(for: timeout); return false }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw DrainTimedOut(timeout: timeout) }
        }
    } catch {
        for route in routes { try? await route.sink.close() }
        throw error
    }
    for route in routes { try await route.sink.close() }
}

func install(_ config: SpillwayConfig, on database: TestDatabase) async throws -> InstallReport {
    try await PostgresConnection.withConnection(url: database.url, applicationName: "spillway-tests") { connection in
        switch config.source.kind {
        case .auditLog: try await AuditLogInstaller(config: config, logger: TestEnvironment.logger).install(on: connection)
        case .replication: try await ReplicationInstaller(config: config, logger: TestEnvironment.logger).install(on: connection)
        }
    }
}

/// A line of a JSONL sink that is not an event.
struct UnreadableSinkLine: Error, CustomStringConvertible {
    let description: String
}

/// The events a JSONL sink holds, in file order. Every line must be a whole event ending in a newline: a
/// torn last line after a kill is an error, not something to skip. `isStillWriting` (for polling a file
/// that a running `spillway` appends to) ignores a last line that has no newline yet.
func readEvents(_ path: String, isStillWriting: Bool = false) throws -> [ChangeEvent] {
    guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return [] }
    var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    let last = lines.removeLast()  // after the final newline: empty unless the last write was torn
    if !last.isEmpty, !isStillWriting {
        throw UnreadableSinkLine(description: "\(path): line \(lines.count + 1) has no newline (a torn write?): \(last.prefix(120))")
    }
    return try lines.enumerated().map { index, line in
        do {
            return try ChangeEvent(json: JSONParser.parse(String(line)))
        } catch {
            throw UnreadableSinkLine(description: "\(path): line \(index + 1) of \(lines.count) is not an event (\(error)): \(line.prefix(200))")
        }
    }
}

func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}
