import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("hot standby: several runners of one consumer", .enabled(if: TestEnvironment.canRun))
struct HotStandbyTests {
    /// `products` captured by one consumer with two runners, each with a file of its own (what each delivered
    /// stays apart): the first streaming, the second waiting as its standby.
    static func startPair(_ db: TestDatabase, kind: SourceKind, takeover: String) async throws
        -> (app: PostgresConnection, active: SpillwayProcess, activeSink: String, standby: SpillwayProcess, standbySink: String) {
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let (activeConfig, activeSink) = try db.writeConfig(kind: kind.rawValue, extraSource: "  batch_size: 20")
        let (standbyConfig, standbySink) = try db.writeConfig(kind: kind.rawValue, extraSource: "  batch_size: 20")
        let installed = try await SpillwayProcess.run(["install", "--config", activeConfig])
        try #require(installed.code == 0, "install failed: \(installed.stderr)")
        let environment = ["SPILLWAY_HA__TAKEOVER": takeover]
        let active = try SpillwayProcess(["run", "--config", activeConfig], environment: environment)
        try await active.waitForLog(kind.streamingLog)
        let standby = try SpillwayProcess(["run", "--config", standbyConfig], environment: environment)
        try await standby.waitForLog("standby: another runner of this consumer is active")
        return (app, active, activeSink, standby, standbySink)
    }

    @Test("kill -9 of the active runner: the standby takes over from its checkpoint; nothing is lost, only the killed runner's unsaved tail comes again",
          arguments: SourceKind.allCases)
    func standbyTakesOver(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let (app, active, activeSink, standby, standbySink) = try await Self.startPair(db, kind: kind, takeover: "1s")
            let standbyScrape = try await Scrape.take(port: try await standby.httpPort())
            #expect(standbyScrape.readyz.status == 200 && standbyScrape.readyz.body.contains("role: standby"), "\(standbyScrape.readyz.body)")
            #expect(standbyScrape.sum("spillway_leader") == 0)

            for first in stride(from: 1, through: 1000, by: 50) {
                try await app.execute("INSERT INTO products SELECT g, 'p' FROM generate_series(\(first), \(first + 49)) g")
            }
            // Mid-stream: a few hundred delivered, more on the way.
            try await waitForEvents(activeSink, "the active runner to deliver some", until: { $0.count >= 200 })
            active.signal(SIGKILL)
            _ = try await active.wait()
            let killedAt = ContinuousClock.now
            try await app.execute("INSERT INTO products SELECT g, 'q' FROM generate_series(1001, 1200) g")
            try await standby.waitForLog("active: took over the consumer")
            let takeover = ContinuousClock.now - killedAt
            try await waitForEvents(standbySink, timeout: .seconds(90), "the rest, from the new active runner") {
                $0.contains { $0.key?["id"]?.plainText == "1200" }
            }
            let scrape = try await Scrape.take(port: try await standby.httpPort())
            #expect(scrape.readyz.body.contains("role: active"), "\(scrape.readyz.body)")
            #expect(scrape.sum("spillway_leader") == 1)
            standby.signal(SIGTERM)
            #expect(try await standby.wait() == 0, "\(standby.stderr)")

            let byKilled = try readEvents(activeSink, isStillWriting: true).compactMap { $0.key?["id"]?.plainText }
            let byNew = try readEvents(standbySink).compactMap { $0.key?["id"]?.plainText }
            #expect(!byKilled.isEmpty && !byNew.isEmpty)
            #expect(Set(byKilled).union(byNew) == Set((1...1200).map(String.init)), "nothing committed is missing")
            let twice = Set(byKilled).intersection(byNew).count
            // The new runner starts at the killed one's last checkpoint: what comes twice is exactly the tail the
            // killed runner delivered past it, in the same order, and nothing before it.
            #expect(Array(byNew.prefix(twice)) == Array(byKilled.suffix(twice)), "the overlap is the killed runner's unsaved tail")
            #expect(twice < byKilled.count, "not everything again: the new runner resumed from a checkpoint")
            #expect(Set(byNew).count == byNew.count && Set(byKilled).count == byKilled.count, "each runner delivered each change once")
            print("hot standby (\(kind)): took over \(takeover) after kill -9; \(byKilled.count) events by the killed runner, "
                + "\(byNew.count) by the new one, \(twice) delivered by both")
        }
    }

    /// No FIN, no reset: the active runner's packets to PostgreSQL are dropped, both ways, while it streams. The
    /// server must end its sessions (and so free the lock and the slot) on its own timeouts, and the runner must
    /// notice on its own; until then each believes the other is there.
    @Test("a cut network between the active runner and PostgreSQL: the standby takes over within a few ha.takeover; nothing is lost; the cut runner stops and stands by",
          .enabled(if: NetworkCut.isAvailable, "iptables cannot drop packets on this machine (it needs CAP_NET_ADMIN)"), arguments: SourceKind.allCases)
    func standbyTakesOverAfterACutNetwork(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let (app, active, activeSink, standby, standbySink) = try await Self.startPair(db, kind: kind, takeover: "2s")

            for first in stride(from: 1, through: 500, by: 50) {
                try await app.execute("INSERT INTO products SELECT g, 'p' FROM generate_series(\(first), \(first + 49)) g")
            }
            try await waitForEvents(activeSink, "the active runner to deliver some", until: { $0.count >= 100 })
            let port = try #require(URLComponents(string: db.url)?.port, "the test database URL names a port")
            let cut = try await NetworkCut.cut(pid: active.pid, remotePort: port)
            defer { cut.heal() }
            try #require(cut.ports.count >= 2, "the active runner's connections were found: \(cut.ports)")
            let cutAt = ContinuousClock.now
            try await app.execute("INSERT INTO products SELECT g, 'q' FROM generate_series(501, 700) g")

            try await standby.waitForLog("active: took over the consumer", timeout: .seconds(60))
            let takeover = ContinuousClock.now - cutAt
            try await waitForEvents(standbySink, timeout: .seconds(90), "the rest, from the new active runner") {
                $0.contains { $0.key?["id"]?.plainText == "700" }
            }
            // Its own timeouts tell the cut runner its sessions are gone; it reconnects (new connections are not
            // cut), finds the consumer taken and waits as a standby.
            try await active.waitForLog("standby: another runner of this consumer is active", timeout: .seconds(60))
            let noticed = ContinuousClock.now - cutAt
            #expect(takeover < .seconds(20), "the server freed the consumer within a few ha.takeover of the cut: took \(takeover)")
            #expect(noticed < .seconds(30), "the cut runner stood down within a few ha.takeover: took \(noticed)")
            #expect(standby.process.isRunning && active.process.isRunning, "neither exited: \(standby.stderr.suffix(2000))")
            standby.signal(SIGTERM)
            active.signal(SIGTERM)
            #expect(try await standby.wait() == 0, "\(standby.stderr.suffix(3000))")
            #expect(try await active.wait() == 0, "\(active.stderr.suffix(3000))")

            let byCut = try readEvents(activeSink).compactMap { $0.key?["id"]?.plainText }
            let byNew = try readEvents(standbySink).compactMap { $0.key?["id"]?.plainText }
            #expect(Set(byCut).union(byNew) == Set((1...700).map(String.init)), "nothing committed is missing")
            #expect(Set(byNew).count == byNew.count, "the new runner delivered each change once")
            #expect(!byNew.isEmpty && Set(byNew).isSuperset(of: (501...700).map(String.init)), "what was written after the cut came from the new runner")
            print("hot standby (\(kind)): took over \(takeover) after the network was cut; the cut runner stood by after \(noticed); "
                + "\(byCut.count) events by the cut runner, \(byNew.count) by the new one")
        }
    }

    @Test("a checkpoint save from a session that does not hold the consumer's lock changes nothing", arguments: SourceKind.allCases)
    func saveWithoutTheLockIsRefused(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, _) = try db.writeConfig(kind: kind.rawValue)
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let before = try await CheckpointRow.read(consumer: "tests", on: app)
            let store = CheckpointStore(schema: "spillway")
            await #expect(throws: ConsumerLockLost.self) {
                if kind == .replication {
                    try await store.save(consumer: "tests", position: ReplicationPosition(commitLSN: LSN(string: "0/1000000")!, index: nil),
                                         lastEventPosition: "forged", deliveredEvents: 5, on: app)
                } else {
                    try await store.save(consumer: "tests", cursor: AuditLogCursor(), position: "forged", deliveredEvents: 5, on: app)
                }
            }
            let after = try await CheckpointRow.read(consumer: "tests", on: app)
            #expect(after.position == before.position && after.eventsTotal == before.eventsTotal, "\(after)")

            // With the lock, the same session may save.
            _ = try await app.query("SELECT pg_advisory_lock(hashtext($1))", [CheckpointStore.lockName(consumer: "tests")])
            if kind == .auditLog {
                try await store.save(consumer: "tests", cursor: AuditLogCursor(), position: "p", deliveredEvents: 1, on: app)
                #expect(try await CheckpointRow.read(consumer: "tests", on: app).eventsTotal == before.eventsTotal + 1)
            }
        }
    }
}
