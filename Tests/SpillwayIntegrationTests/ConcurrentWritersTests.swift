import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("both sources under concurrent writers", .enabled(if: TestEnvironment.canRun))
struct ConcurrentWritersTests {
    /// pgbench with 8 clients upserts and updates 40 shared rows, sleeping inside transactions so commits
    /// land out of id order, rolling back some; `spillway run` streams meanwhile and is killed -9 once.
    /// Every row carries a version counter that each committed change bumps by one, so the events can be
    /// checked against the database without trusting Spillway's own audit table. The replication source
    /// runs with small batches and several in flight, so its pipeline stages overlap throughout.
    @Test("every committed change arrives, rollbacks never do, per-key order holds, and the last event equals the row",
          arguments: ["audit_log", "replication"])
    func pgbenchWithKillDashNine(kind: String) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL, version int NOT NULL DEFAULT 1);
                CREATE TABLE rolled_back (id int PRIMARY KEY);
                """)
            let (configPath, sink) = try db.writeConfig(tables: ["public.items", "public.rolled_back"], consumer: "bench", kind: kind,
                                                        extraSource: kind == "replication" ? "  batch_size: 50\n  max_in_flight_batches: 8" : "")
            // What `run` logs once it streams: the audit_log poller's "reading", the replication reader's start.
            let streaming = kind == "replication" ? "replication started" : "reading"
            let install = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(install.code == 0, "install failed: \(install.stderr)")

            let script = tempPath("writers.sql")
            try """
                \\set id random(1, 40)
                \\set other random(1, 40)
                \\set nap random(0, 15)
                BEGIN;
                INSERT INTO items (id, value) VALUES (:id, :nap) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, version = items.version + 1;
                \\sleep :nap ms
                UPDATE items SET value = value + 1, version = version + 1 WHERE id = :other AND :other > :id;
                END;
                """.write(toFile: script, atomically: true, encoding: .utf8)
            let rollback = tempPath("rollback.sql")
            try """
                \\set id random(1, 1000000)
                BEGIN;
                INSERT INTO rolled_back VALUES (:id) ON CONFLICT DO NOTHING;
                UPDATE items SET version = -1 WHERE id = 1000000;
                ROLLBACK;
                """.write(toFile: rollback, atomically: true, encoding: .utf8)

            var runner = try SpillwayProcess(["run", "--config", configPath])
            // The writers start once `run` streams: a start-up slowed by a loaded machine must not let them
            // finish before the kill below.
            try await runner.waitForLog(streaming)
            let pgbench = Process()
            pgbench.executableURL = URL(fileURLWithPath: "\(TestEnvironment.pgBin)/pgbench")
            // Rate-limited, so the writing lasts about 40 s however fast the machine: the kill below must land
            // while it writes (loaded CI runs saw all transactions done before the first delivery, at 3200 and
            // 10 s too).
            pgbench.arguments = ["-n", "-c", "8", "-j", "2", "-t", "1600", "-R", "320", "-f", "\(script)@9", "-f", "\(rollback)@1", db.url]
            let benchLog = tempPath("pgbench.log")
            _ = FileManager.default.createFile(atPath: benchLog, contents: nil)
            pgbench.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: benchLog))
            pgbench.standardError = pgbench.standardOutput
            try pgbench.run()
            defer { if pgbench.isRunning { kill(pgbench.processIdentifier, SIGKILL) } }

            // Killed once the first changes reached the sink, while pgbench still writes.
            try await waitForGrowth(sink, beyond: 0)
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atKill = try readEvents(sink, isStillWriting: true)  // killed mid-write: a torn last line was never acknowledged
            let checkpoint = try await CheckpointRow.read(consumer: "bench", on: app)
            #expect(pgbench.isRunning, "the kill landed while the writers were still writing")
            runner = try SpillwayProcess(["run", "--config", configPath])
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            while pgbench.isRunning, clock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            if pgbench.isRunning { kill(pgbench.processIdentifier, SIGKILL) }
            let benchOutput = (try? String(contentsOfFile: benchLog, encoding: .utf8)) ?? ""
            try #require(pgbench.terminationStatus == 0, "pgbench failed: \(benchOutput)")
            try await runner.waitForLog(streaming)
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "SIGTERM ends `run` with exit 0: \(runner.stderr)")
            let drain = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(drain.code == 0, "\(drain.stderr)")

            let events = try readEvents(sink)
            try expectResumedFromCheckpoint(atKill: atKill, checkpoint: checkpoint, all: events, isOrderFixed: kind == "replication")
            let rows = try await app.query("SELECT id, value, version FROM items ORDER BY id")
            #expect(rows.rows.count == 40, "1800 upserts of 40 random ids touch every one")
            #expect(!events.contains { $0.table == "rolled_back" }, "rolled-back changes are never emitted")

            // First delivery of each change, in delivery order (kill -9 may have caused redeliveries).
            let deliveredOnce = firstDeliveries(events)
            var versions: [String: [Int]] = [:]
            for event in deliveredOnce where event.table == "items" {
                let id = event.key?["id"]?.plainText ?? "?"
                if case .number(let v)? = event.after?["version"] { versions[id, default: []].append(Int(v) ?? -1) }
            }
            for row in rows.rows {
                let id = row[0] ?? ""
                let finalVersion = Int(row[2] ?? "") ?? 0
                // Versions 1...final, each once and in order: no change lost, none out of commit order.
                #expect(versions[id] == Array(1...finalVersion), "row \(id): versions seen \(versions[id] ?? [])")
                let last = deliveredOnce.last { $0.table == "items" && $0.key?["id"]?.plainText == id }
                #expect(last?.after?["value"]?.plainText == row[1], "row \(id): last event equals the table")
            }
            // Each transaction's events form one contiguous run, in sequence order.
            var finished = Set<UInt64>()
            var current: UInt64?
            var lastSequence: Int = -1
            for event in deliveredOnce {
                let txid = try #require(event.txid)
                // audit_log: `<txid>/<seq>`; replication: `<commit LSN>:<index in the transaction>`.
                let sequence = Int(event.position.split(separator: kind == "replication" ? ":" : "/").last ?? "") ?? -1
                #expect(sequence >= 0, "position \(event.position)")
                if txid != current {
                    #expect(!finished.contains(txid), "transaction \(txid) was split")
                    if let current { finished.insert(current) }
                    current = txid
                } else {
                    #expect(sequence > lastSequence, "transaction \(txid) out of statement order")
                }
                lastSequence = sequence
            }
            let duplicates = events.count - deliveredOnce.count
            print("pgbench (\(kind)): \(deliveredOnce.count) changes delivered, \(duplicates) redelivered after kill -9")
        }
    }
}
