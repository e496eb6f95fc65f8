import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("spillway commands: lifecycle, signals and bad input", .enabled(if: TestEnvironment.canRun))
struct CommandLineTests {
    @Test("run survives SIGTERM and kill -9 mid-stream: after restarts nothing committed is missing")
    func restartAndKillDashNine() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let (configPath, sink) = try db.writeConfig()
        #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)

        var runner = try SpillwayProcess(["run", "--config", configPath])
        for batch in 0..<40 {
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(\(batch * 50 + 1), \(batch * 50 + 50)) g")
            if batch == 10 {
                try await runner.waitForLog("reading")
                runner.signal(SIGTERM)
                #expect(try await runner.wait() == 0, "graceful stop exits 0: \(runner.stderr)")
                runner = try SpillwayProcess(["run", "--config", configPath])
            }
            if batch == 25 {
                runner.signal(SIGKILL)
                _ = try await runner.wait()
                runner = try SpillwayProcess(["run", "--config", configPath])
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await runner.waitForLog("reading")
        runner.signal(SIGINT)
        #expect(try await runner.wait() == 0)
        #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
        let ids = Set(try readEvents(sink).compactMap { $0.key?["id"]?.plainText })
        #expect(ids == Set((1...2000).map(String.init)))
        await app.close()
        await db.drop()
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

    @Test("a second runner of the same consumer is refused")
    func singleRunnerPerConsumer() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
        let (configPath, _) = try db.writeConfig()
        #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
        let first = try SpillwayProcess(["run", "--config", configPath])
        try await first.waitForLog("reading")
        let second = try await SpillwayProcess.run(["run", "--config", configPath])
        #expect(second.code == 1)
        #expect(second.stderr.contains("already running"))
        first.signal(SIGTERM)
        #expect(try await first.wait() == 0)
        await app.close()
        await db.drop()
    }

    @Test("bad input: unknown key, missing table, unreachable database; exit codes, messages, nothing written, no password")
    func badInput() async throws {
        let db = try await TestDatabase.create()
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
        await app.close()
        await db.drop()
    }

    @Test("uninstall removes triggers and schema, and refuses while other consumers exist unless forced")
    func uninstall() async throws {
        let db = try await TestDatabase.create()
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
        await app.close()
        await db.drop()
    }
}
