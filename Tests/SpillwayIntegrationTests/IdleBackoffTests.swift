import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// `source.idle_backoff` (audit_log): an idle `run` lets go of every database connection, so a database that
/// suspends when idle can; a change made meanwhile is delivered at the next poll, and SIGTERM while it waits
/// ends it cleanly.
@Suite("audit_log idle backoff", .enabled(if: TestEnvironment.canRun))
struct IdleBackoffTests {
    @Test("idle: no connection held between polls; a later change arrives; SIGTERM while waiting exits 0")
    func idleRunHoldsNoConnection() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (configPath, sink) = try db.writeConfig(consumer: "idle", extraSource: "  idle_backoff: {after: 500ms, max: 2s}")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath], environment: ["SPILLWAY_HTTP__ADDRESS": "off"])
            try await app.execute("INSERT INTO products VALUES (1)")
            try await waitForEvents(sink, "the first insert") { $0.count == 1 }

            func spillwayConnections() async throws -> Int {
                Int(try await app.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                      AND application_name LIKE 'spillway%' AND application_name <> 'spillway-tests'
                    """).first?[0] ?? "") ?? -1
            }
            try await waitUntil("run closes every connection once idle", timeout: .seconds(20)) {
                try await spillwayConnections() == 0
            }
            try await app.execute("INSERT INTO products VALUES (2)")
            let events = try await waitForEvents(sink, timeout: .seconds(30), "the insert made while it held nothing") { $0.count == 2 }
            #expect(events.map { $0.after?["id"]?.plainText } == ["1", "2"])
            try await waitUntil("idle again", timeout: .seconds(20)) { try await spillwayConnections() == 0 }
            #expect(runner.stderr.contains("idle: every connection closed"), "\(runner.stderr)")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr)")
            let checkpoint = try await CheckpointRow.read(consumer: "idle", on: app)
            #expect(checkpoint.eventsTotal == 2, "both changes checkpointed")
        }
    }
}
