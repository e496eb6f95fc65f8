import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("spillway commands: lifecycle, signals and bad input", .enabled(if: TestEnvironment.canRun))
struct CommandLineTests {
    /// 100 transactions of 50 rows (ids 1...5000) committed before `run` starts: with `batch_size: 20` that
    /// is 250 batches, so a signal sent when the first of them reaches the sink lands mid-stream.
    static func commitBacklog(_ app: PostgresConnection, ids: ClosedRange<Int> = 1...5000) async throws {
        for first in stride(from: ids.lowerBound, through: ids.upperBound, by: 50) {
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(\(first), \(min(first + 49, ids.upperBound))) g")
        }
    }

    @Test("kill -9 right after the first delivery: the restart resumes at the checkpoint, redelivers only the unacknowledged, loses nothing",
          arguments: SourceKind.allCases)
    func killDashNineMidStream(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            // Small batches one at a time: draining the backlog takes three thousand round trips, so even a starved
            // test process (a loaded CI machine once saw a smaller backlog all delivered first) kills before the end.
            let (configPath, sink) = try db.writeConfig(kind: kind.rawValue, extraSource: "  batch_size: 5\n  max_in_flight_batches: 1")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            try await Self.commitBacklog(app, ids: 1...15_000)

            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await waitForGrowth(sink, beyond: 0)
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atKill = try readEvents(sink, isStillWriting: true)  // killed mid-write: a torn last line was never acknowledged
            let checkpoint = try await CheckpointRow.read(consumer: "tests", on: app)
            try #require(!atKill.isEmpty, "the kill came after a first delivery")
            #expect(checkpoint.eventsTotal < 15_000, "the kill landed mid-stream: \(checkpoint)")

            // More changes while it is down, then a restart that drains everything.
            try await Self.commitBacklog(app, ids: 15_001...15_500)
            let restarted = try SpillwayProcess(["run", "--config", configPath])
            try await waitForStatus(configPath, timeout: .seconds(120), "all 15500 changes to be acknowledged") {
                $0["events_total"]?.plainText == "15500"
            }
            try await restarted.waitForLog(kind.streamingLog)
            restarted.signal(SIGINT)
            #expect(try await restarted.wait() == 0, "SIGINT ends `run` with exit 0: \(restarted.stderr)")

            let all = try readEvents(sink)
            try expectResumedFromCheckpoint(atKill: atKill, checkpoint: checkpoint, all: all, isOrderFixed: kind == .replication)
            let redelivered = atKill.count - checkpoint.eventsTotal
            #expect(all.count == 15_500 + redelivered, "each change once, plus the \(redelivered) redelivered")
            #expect(Set(all.compactMap { $0.key?["id"]?.plainText }) == Set((1...15_500).map(String.init)), "nothing committed is missing")
            print("kill -9 (\(kind)): \(atKill.count) events at the sink, \(checkpoint.eventsTotal) acknowledged, \(redelivered) redelivered")
        }
    }

    @Test("SIGTERM mid-stream: exit 0, the checkpoint is at the last event the sink holds, the next run neither repeats nor skips",
          arguments: SourceKind.allCases)
    func gracefulStopSavesTheCheckpoint(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(kind: kind.rawValue, extraSource: "  batch_size: 20")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            // Enough batches that SIGTERM lands mid-stream even when replication reads 5,000 rows in a blink.
            try await Self.commitBacklog(app, ids: 1...40_000)

            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await runner.waitForLog(kind.streamingLog)
            try await waitForGrowth(sink, beyond: 0)
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "graceful stop exits 0: \(runner.stderr)")
            let atStop = try readEvents(sink)
            let checkpoint = try await CheckpointRow.read(consumer: "tests", on: app)
            try #require(!atStop.isEmpty)
            try #require(atStop.count < 40_000, "stopped mid-stream")
            #expect(checkpoint.position == atStop.last?.position, "the checkpoint is the last acknowledged change: \(checkpoint)")
            #expect(checkpoint.eventsTotal == atStop.count, "every event at the sink was acknowledged: \(checkpoint)")
            #expect(Set(atStop.map(\.id)).count == atStop.count)

            let drain = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(drain.code == 0, "\(drain.stderr)")
            let all = try readEvents(sink)
            #expect(all.prefix(atStop.count).map(\.id) == atStop.map(\.id))
            #expect(all.count == 40_000, "after a graceful stop nothing is delivered twice")
            #expect(all.compactMap { $0.key?["id"]?.plainText } == (1...40_000).map(String.init), "nothing skipped, in commit order")
            #expect(try await CheckpointRow.read(consumer: "tests", on: app).position == all.last?.position)
        }
    }

    @Test("`spillway demo` starts its own cluster, shows both sources, and cleans up; --config redirects its events")
    func demo() async throws {
        let sink = tempPath("demo.jsonl")
        let config = tempPath("demo.yaml")
        try """
            database: {url: "postgres://unused@127.0.0.1:1/unused"}
            source: {tables: [public.products]}
            sinks: [{name: file, kind: file, path: "\(sink)"}]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let run = try await SpillwayProcess.run(["demo", "--config", config], timeout: .seconds(120))
        #expect(run.code == 0, "\(run.stderr)")
        #expect(run.stdout.contains("# cluster stopped and removed"))
        let events = try readEvents(sink)
        // Seven changes through audit_log, then the same seven and an outbox message through replication.
        #expect(events.count == 15)
        #expect(events.prefix(7).map(\.op) == [.insert, .insert, .insert, .update, .delete, .insert, .insert])
        #expect(events.last?.op == .message && events.last?.message?.prefix == "orders")
        let names = events.prefix(7).compactMap { $0.after?["name"]?.stringValue }
        #expect(names.last == "A: inserted first, committed last", "the late commit comes last")
        #expect(!FileManager.default.fileExists(atPath: run.stdout.split(separator: " ").first { $0.hasPrefix("/tmp/spillway-demo-") }.map(String.init) ?? "/nonexistent"))
    }

    @Test("a second runner of the same consumer waits as a standby and delivers nothing; `run --once` beside an active one is refused; another consumer runs beside it",
          arguments: SourceKind.allCases)
    func singleRunnerPerConsumer(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (configPath, sink) = try db.writeConfig(kind: kind.rawValue)
            let (otherPath, otherSink) = try db.writeConfig(consumer: "other", kind: kind.rawValue)
            for path in [configPath, otherPath] {
                let installed = try await SpillwayProcess.run(["install", "--config", path])
                try #require(installed.code == 0, "install failed: \(installed.stderr)")
            }
            let first = try SpillwayProcess(["run", "--config", configPath])
            try await first.waitForLog(kind.streamingLog)
            let once = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(once.code == 1, "\(once.stderr)")
            #expect(once.stderr.contains("already running"), "\(once.stderr)")
            #expect(first.process.isRunning, "the refused runner did not disturb the first")
            // A second daemon of the same consumer is a standby: it waits for the lock, reads and writes nothing.
            let second = try SpillwayProcess(["run", "--config", configPath])
            try await second.waitForLog("standby: another runner of this consumer is active")

            // A different consumer is not refused, and both read the same changes.
            let other = try SpillwayProcess(["run", "--config", otherPath])
            try await other.waitForLog(kind.streamingLog)
            try await app.execute("INSERT INTO products SELECT generate_series(1, 3)")
            for path in [sink, otherSink] {
                try await waitForEvents(path, "both consumers to deliver the 3 inserts") { $0.count >= 3 }
            }
            for runner in [second, first, other] {
                runner.signal(SIGTERM)
                #expect(try await runner.wait() == 0, "\(runner.stderr)")
            }
            for path in [sink, otherSink] {
                #expect(try readEvents(path).compactMap { $0.key?["id"]?.plainText } == ["1", "2", "3"])
            }
        }
    }

    @Test("bad input: unknown key, missing table, unreachable database; exit codes, messages, nothing written, no password")
    func badInput() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-bad-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)

            let typo = dir.appendingPathComponent("typo.yaml").path
            try """
                database: {url: "\(db.url)"}
                source: {kind: audit_log, tables: [public.products], pol_interval: 1s}
                sinks: [{name: out, kind: file, path: out.jsonl}]
                """.write(toFile: typo, atomically: true, encoding: .utf8)
            let unknown = try await SpillwayProcess.run(["install", "--config", typo])
            #expect(unknown.code == 2)
            #expect(unknown.stderr.contains("source.pol_interval") && unknown.stderr.contains("did you mean 'poll_interval'"))

            let (missingTable, _) = try db.writeConfig(tables: ["public.nope"])
            let missing = try await SpillwayProcess.run(["install", "--config", missingTable])
            #expect(missing.code == 2)
            #expect(missing.stderr.contains("source.tables[0]") && missing.stderr.contains("public.nope does not exist"))
            let schema = try await app.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'spillway'")
            #expect(schema.first?[0] == "0", "a failed install leaves nothing behind")

            let unreachable = dir.appendingPathComponent("unreachable.yaml").path
            try """
                database: {url: "postgres://spillway:hunter2@127.0.0.1:1/app"}
                source: {tables: [public.products]}
                sinks: [{name: out, kind: file, path: out.jsonl}]
                """.write(toFile: unreachable, atomically: true, encoding: .utf8)
            let clock = ContinuousClock()
            let started = clock.now
            let down = try await SpillwayProcess.run(["install", "--config", unreachable])
            #expect(down.code == 1)
            #expect(clock.now - started < .seconds(15), "install fails fast")
            #expect(down.stderr.contains("cannot connect"))
            #expect(!down.stderr.contains("hunter2") && !down.stdout.contains("hunter2"), "the password never reaches output")

            // `run` keeps retrying an unreachable database instead of exiting, and stops cleanly on SIGTERM.
            let retrying = try SpillwayProcess(["run", "--config", unreachable])
            try await retrying.waitForLog("reconnecting")
            #expect(retrying.process.isRunning)
            retrying.signal(SIGTERM)
            #expect(try await retrying.wait() == 0)
            #expect(retrying.stderr.contains("reconnecting") && !retrying.stderr.contains("hunter2"))

            let noConfig = try await SpillwayProcess.run(["status", "--config", dir.appendingPathComponent("absent.yaml").path])
            #expect(noConfig.code == 2 && noConfig.stderr.contains("cannot read"))
        }
    }

    @Test("uninstall removes triggers and schema, and refuses while other consumers exist unless forced")
    func uninstall() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (one, _) = try db.writeConfig(consumer: "one")
            let (two, _) = try db.writeConfig(consumer: "two")
            #expect(try await SpillwayProcess.run(["install", "--config", one]).code == 0)
            #expect(try await SpillwayProcess.run(["install", "--config", two]).code == 0)
            let refused = try await SpillwayProcess.run(["uninstall", "--config", one])
            #expect(refused.code == 1 && refused.stderr.contains("two"))
            #expect(try await SpillwayProcess.run(["uninstall", "--force", "--config", one]).code == 0)
            let triggers = try await app.query("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal")
            #expect(triggers.first?[0] == "0")
            try await app.execute("INSERT INTO products VALUES (1)")
        }
    }
}
