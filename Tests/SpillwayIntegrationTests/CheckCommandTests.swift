import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("spillway check: the config, then the database and every sink", .enabled(if: TestEnvironment.canRun))
struct CheckCommandTests {
    @Test("three independent mistakes are all reported, each naming its key; exit 2, nothing contacted")
    func reportsEveryMistake() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = dir.appendingPathComponent("bad.yaml").path
        try """
            database: {url: "postgres://nobody@127.0.0.1:1/none"}
            source:
              tables: [public.products]
              batch_size: 0
            sinks:
              - {name: out, kind: file, path: "\(dir.path)/out.jsonl"}
              - {name: queue, kind: carrier-pigeon}
            log: {level: loud}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let check = try await SpillwayProcess.run(["check", "--config", config])
        #expect(check.code == 2, "\(check.stdout)\(check.stderr)")
        for key in ["source.batch_size", "sinks[1].kind", "log.level"] {
            #expect(check.stdout.contains("error  \(key):"), "reports \(key): \(check.stdout)")
        }
        #expect(check.stdout.contains("3 configuration problems"), "\(check.stdout)")
        #expect(!check.stdout.contains("cannot connect"), "a broken config contacts no server: \(check.stdout)")
    }

    @Test("a reachable, installed setup passes: exit 0", arguments: SourceKind.allCases)
    func reachableSetupPasses(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, _) = try db.writeConfig(kind: kind.rawValue)
            let before = try await SpillwayProcess.run(["check", "--config", configPath])
            #expect(before.code == 1, "not installed yet: \(before.stdout)")
            #expect(before.stdout.contains("error  consumer: consumer 'tests' is not installed"), "\(before.stdout)")

            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            let check = try await SpillwayProcess.run(["check", "--config", configPath])
            #expect(check.code == 0, "\(check.stdout)\(check.stderr)")
            #expect(check.stdout.contains("ok     source.tables[0]: public.products exists"), "\(check.stdout)")
            #expect(check.stdout.contains("all checks passed"), "\(check.stdout)")
            if kind == .replication { #expect(check.stdout.contains("ok     source.kind: wal_level = logical"), "\(check.stdout)") }
        }
    }

    @Test("what would fail at run time: a missing table, no replica identity, an unreachable Redis and webhook host; exit 1")
    func reportsWhatWouldFail() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            try await app.execute("CREATE TABLE notes (body text)")  // no primary key: no replica identity
            let (configPath, _) = try db.writeConfig(tables: ["public.products", "public.notes"], kind: "replication")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            try await app.execute("DROP TABLE notes")
            try await app.execute("CREATE TABLE notes (body text)")
            // Port 1 on loopback: nothing listens there.
            let extra = [
                "  - {name: cache, kind: redis, url: \"redis://127.0.0.1:1/0\", keys: {public.products: [\"p:{key.id}\"]}}",
                "  - {name: hook, kind: webhook, url: \"http://127.0.0.1:1/hook\"}",
            ].joined(separator: "\n")
            let broken = configPath + ".broken.yaml"
            try (try String(contentsOfFile: configPath, encoding: .utf8) + "\n" + extra + "\n").write(toFile: broken, atomically: true, encoding: .utf8)
            let check = try await SpillwayProcess.run(["check", "--config", broken])
            #expect(check.code == 1, "\(check.stdout)\(check.stderr)")
            #expect(check.stdout.contains("error  source.tables[1]: public.notes has no replica identity"), "\(check.stdout)")
            #expect(check.stdout.contains("error  sinks[1].url: cannot reach Redis 127.0.0.1:1"), "\(check.stdout)")
            #expect(check.stdout.contains("error  sinks[2].url: cannot reach webhook host 127.0.0.1:1"), "\(check.stdout)")
            #expect(check.stdout.contains("ok     source.tables[0]: public.products exists"), "\(check.stdout)")

            try await app.execute("DROP TABLE notes")
            let missing = try await SpillwayProcess.run(["check", "--config", configPath])
            #expect(missing.code == 1)
            #expect(missing.stdout.contains("error  source.tables[1]: table public.notes does not exist"), "\(missing.stdout)")
        }
    }

    @Test("an environment override changes a value; a bad one is reported naming the variable")
    func environmentOverrides() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, _) = try db.writeConfig()
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            // The override points the consumer elsewhere: `check` then finds that one not installed.
            let other = try await SpillwayProcess.run(["check", "--config", configPath], environment: ["SPILLWAY_CONSUMER": "elsewhere"])
            #expect(other.code == 1, "\(other.stdout)")
            #expect(other.stdout.contains("consumer 'elsewhere' is not installed"), "\(other.stdout)")
            #expect(try await SpillwayProcess.run(["check", "--config", configPath], environment: ["SPILLWAY_SOURCE__BATCH_SIZE": "7"]).code == 0)
            let bad = try await SpillwayProcess.run(["check", "--config", configPath], environment: ["SPILLWAY_SOURCE__BATCH_SIZE": "lots"])
            #expect(bad.code == 2)
            #expect(bad.stdout.contains("source.batch_size") && bad.stdout.contains("SPILLWAY_SOURCE__BATCH_SIZE"), "\(bad.stdout)")
            let run = try await SpillwayProcess.run(["run", "--once", "--config", configPath], environment: ["SPILLWAY_SOURCE__BATCH_SIZE": "lots"])
            #expect(run.code == 2, "run refuses the bad override too")
            #expect(run.stderr.contains("SPILLWAY_SOURCE__BATCH_SIZE"), "\(run.stderr)")
        }
    }
}
