import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("replication source (pgoutput)", .enabled(if: TestEnvironment.canRun))
struct ReplicationTests {
    static let allTypes = """
        CREATE TYPE mood AS ENUM ('happy', 'sad');
        CREATE DOMAIN positive AS int CHECK (VALUE > 0);
        CREATE TABLE products (
            id bigint PRIMARY KEY, flag boolean, small smallint, whole integer, big bigint, real4 real, real8 double precision,
            exact numeric(30,10), nan numeric, money_col money, name text, code varchar(10), letter char(2), uid uuid,
            born date, at_time time, stamp timestamp, stamped timestamptz, span interval, raw bytea, doc json, docb jsonb,
            ints int[], texts text[], nums numeric[], grid int[][], feeling mood, count positive, inf double precision
        );
        """
    static let allTypesRow = """
        INSERT INTO products VALUES (
            9223372036854775807, true, -32768, 2147483647, -9223372036854775808, 1.5, 2.25,
            12345678901234567890.0123456789, 'NaN', 12.34, 'héllo "quoted"' || chr(10), 'abc', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '2026-02-28', '13:14:15.5', '2026-01-02 03:04:05.678', '2026-01-02 03:04:05.678+05:30', '1 day 02:03:04', '\\x00ff10',
            '{"b": 1, "a": [true, null]}', '{"n": 1.50, "s": "x"}',
            '{1,2,3}', '{"a b","c,d",NULL}', '{1.10,2}', '{{1,2},{3,4}}', 'sad', 7, 'Infinity'
        )
        """

    @Test("every mapped type arrives the same through replication as through audit_log")
    func typesMatchAcrossSources() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute(Self.allTypes)
        let auditSink = tempPath("audit.jsonl"), replicationSink = tempPath("replication.jsonl")
        let audit = try db.config(consumer: "audit", sinkPath: auditSink)
        let replication = try db.config(consumer: "wal", kind: "replication", sinkPath: replicationSink)
        _ = try await install(audit, on: db)
        _ = try await install(replication, on: db)
        try await app.execute(Self.allTypesRow)
        try await drainOnce(audit)
        try await drainOnce(replication)

        let viaAudit = try #require(try readEvents(auditSink).first)
        let viaWAL = try #require(try readEvents(replicationSink).first)
        let after = try #require(viaWAL.after)
        #expect(after["id"] == .number("9223372036854775807"))
        #expect(after["flag"] == .bool(true))
        #expect(after["big"] == .number("-9223372036854775808"))
        #expect(after["real8"] == .number("2.25"))
        #expect(after["exact"] == .string("12345678901234567890.0123456789"))
        #expect(after["nan"] == .string("NaN"))
        #expect(after["inf"] == .string("Infinity"))
        #expect(after["name"] == .string("héllo \"quoted\"\n"))
        #expect(after["stamp"] == .string("2026-01-02T03:04:05.678"))
        #expect(after["stamped"] == .string("2026-01-01T21:34:05.678Z"))
        #expect(after["raw"] == .string("\\x00ff10"))
        #expect(after["docb"] == .object(["n": .number("1.50"), "s": .string("x")]))
        #expect(after["texts"] == .array([.string("a b"), .string("c,d"), .null]))
        #expect(after["nums"] == .array([.string("1.10"), .string("2")]))
        #expect(after["grid"] == .array([.array([.number("1"), .number("2")]), .array([.number("3"), .number("4")])]))
        #expect(after["feeling"] == .string("sad"))
        #expect(after["count"] == .number("7"), "a domain maps like its base type")
        #expect(viaWAL.key == ["id": .number("9223372036854775807")])

        // The two sources agree on every column (FieldCasesTests repeats this under foreign session settings).
        let auditAfter = try #require(viaAudit.after)
        #expect(after["doc"] == .object(["b": .number("1"), "a": .array([.bool(true), .null])]), "json keeps its own key order")
        for name in after.names {
            #expect(auditAfter[name] == after[name], "column \(name): audit \(auditAfter[name].map(JSONEncoding.string) ?? "-") vs wal \(JSONEncoding.string(after[name]!))")
        }
        #expect(auditAfter.names == after.names, "same columns, same order")
        await app.close()
        await db.drop()
    }

    @Test("updates and deletes with default identity, FULL identity, and a table without a primary key")
    func replicaIdentities() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE products (id int PRIMARY KEY, name text, price int);
                CREATE TABLE full_rows (id int PRIMARY KEY, name text, price int);
                ALTER TABLE full_rows REPLICA IDENTITY FULL;
                CREATE TABLE no_key (name text, price int);
                """)
            let sink = tempPath("events.jsonl")
            let (configPath, _) = try db.writeConfig(tables: ["public.products", "public.full_rows", "public.no_key"], consumer: "wal",
                                                      kind: "replication", sinkPath: sink)
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            #expect(installed.code == 0, "\(installed.stderr)")
            #expect(installed.stdout.contains("warning: table public.no_key has no primary key and no REPLICA IDENTITY FULL"))
            #expect(installed.stdout.contains("REPLICA IDENTITY FULL"))

            try await app.execute("""
                INSERT INTO products VALUES (1, 'a', 10); INSERT INTO full_rows VALUES (1, 'a', 10); INSERT INTO no_key VALUES ('n', 1);
                UPDATE products SET price = 11 WHERE id = 1; UPDATE full_rows SET price = 11 WHERE id = 1;
                UPDATE products SET id = 2 WHERE id = 1;
                DELETE FROM products WHERE id = 2; DELETE FROM full_rows WHERE id = 1;
                """)
            do {
                try await app.execute("UPDATE no_key SET price = 2")
                Issue.record("PostgreSQL accepted an UPDATE on a published table without replica identity")
            } catch let error as PostgresError {
                #expect(error.message.contains("replica identity"))
            }
            #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            let events = try readEvents(sink)
            let products = events.filter { $0.table == "products" }
            try #require(products.map(\.op) == [.insert, .update, .update, .delete])
            #expect(products[1].before == nil, "default identity sends no old row when the key did not change")
            #expect(products[2].before == ["id": .number("1")], "a key change sends the old key")
            #expect(products[2].key == ["id": .number("2")])
            #expect(products[3].before == ["id": .number("2")] && products[3].key == ["id": .number("2")])
            let full = events.filter { $0.table == "full_rows" }
            try #require(full.map(\.op) == [.insert, .update, .delete])
            #expect(full[1].before == ["id": .number("1"), "name": .string("a"), "price": .number("10")])
            #expect(full[1].key == ["id": .number("1")], "the key is the primary key, not every FULL identity column")
            #expect(full[2].before == ["id": .number("1"), "name": .string("a"), "price": .number("11")])
            let noKey = events.filter { $0.table == "no_key" }
            #expect(noKey.count == 1 && noKey.first?.key == nil)
        }
    }

    @Test("an unchanged TOASTed column is marked unchanged, never sent as null")
    func unchangedToast() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, price int, description text)")
            let sink = tempPath("events.jsonl")
            let config = try db.config(consumer: "wal", kind: "replication", sinkPath: sink)
            _ = try await install(config, on: db)
            // Random text does not compress, so it is stored out of line (TOASTed).
            try await app.execute("INSERT INTO products SELECT 1, 10, string_agg(md5(random()::text), '') FROM generate_series(1, 400)")
            try await app.execute("UPDATE products SET price = 11 WHERE id = 1")
            try await drainOnce(config)
            let events = try readEvents(sink)
            try #require(events.count == 2)
            #expect(events[0].after?["description"]?.stringValue?.count == 12_800)
            #expect(events[1].after?["price"] == .number("11"))
            #expect(events[1].after?["description"] == nil, "not null, not a placeholder: absent")
            #expect(events[1].unchangedColumns == ["description"])
            let lines = try String(contentsOfFile: sink, encoding: .utf8).split(separator: "\n")
            try #require(lines.count == 2)
            #expect(lines[1].contains("\"unchanged\":[\"description\"]"))
        }
    }

    @Test("schema changes refresh the relation; outbox messages and the tenant column travel with their transaction")
    func schemaChangeMessagesAndTenant() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, org_id text, price int)")
            let sink = tempPath("events.jsonl")
            let config = try db.config(consumer: "wal", kind: "replication", sinkPath: sink, extraSource: "  tenant_column: org_id")
            _ = try await install(config, on: db)
            try await app.execute("""
                BEGIN;
                INSERT INTO products VALUES (1, 'acme', 10);
                SELECT pg_logical_emit_message(true, 'orders', '{"order": 7}');
                COMMIT;
                ALTER TABLE products ADD COLUMN name text, ALTER COLUMN price TYPE numeric(10,2);
                INSERT INTO products VALUES (2, 'globex', 2.5, 'new column');
                ALTER TABLE products DROP COLUMN org_id;
                UPDATE products SET price = 3 WHERE id = 2;
                """)
            try await drainOnce(config)
            let events = try readEvents(sink)
            try #require(events.map(\.op) == [.insert, .message, .insert, .update])
            #expect(events[0].tenant == "acme" && events[2].tenant == "globex")
            #expect(events[1].message == .init(prefix: "orders", content: "{\"order\": 7}", isTransactional: true))
            #expect(events[1].txid == events[0].txid, "a transactional message belongs to its transaction")
            #expect(events[2].after == ["id": .number("2"), "org_id": .string("globex"), "price": .string("2.50"), "name": .string("new column")])
            #expect(events[3].after == ["id": .number("2"), "price": .string("3.00"), "name": .string("new column")])
        }
    }

    @Test("kill -9 mid-stream and a transaction larger than logical_decoding_work_mem: nothing lost, bounded memory")
    func killDashNineAndLargeTransaction() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "wal", kind: "replication", extraSource: "  batch_size: 500")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")

            // 30 transactions of 100 rows committed first; the kill comes as the first of them reach the sink.
            for batch in 0..<30 {
                try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(\(batch * 100 + 1), \(batch * 100 + 100)) g")
            }
            var runner = try SpillwayProcess(["run", "--config", configPath])
            try await waitForGrowth(sink, beyond: 0)
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atKill = try readEvents(sink, isStillWriting: true)  // killed mid-write: a torn last line was never acknowledged
            let checkpoint = try await CheckpointRow.read(consumer: "wal", on: app)
            runner = try SpillwayProcess(["run", "--config", configPath])

            // One transaction of 200,000 rows: far beyond logical_decoding_work_mem (64kB in the test cluster).
            try await app.execute("INSERT INTO products SELECT g, 'bulk' || g FROM generate_series(100001, 300000) g")
            var peakRSS = 0
            var isDone = false
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            while clock.now < deadline {
                peakRSS = max(peakRSS, residentKilobytes(of: runner.pid))
                if try await statusJSON(configPath)["events_total"]?.plainText == "203000" {
                    isDone = true
                    break
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(isDone, "all 203,000 changes acknowledged within 120 s")
            try await runner.waitForLog("replication started")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
            let events = try readEvents(sink)
            try expectResumedFromCheckpoint(atKill: atKill, checkpoint: checkpoint, all: events, isOrderFixed: true)
            let delivered = firstDeliveries(events)
            #expect(delivered.count == 203_000, "every committed change arrived once (after the redelivery)")
            let committed: [String] = Array(1...3000).map(String.init) + Array(100_001...300_000).map(String.init)
            let deliveredIDs: [String] = delivered.compactMap { $0.key?["id"]?.plainText }
            #expect(deliveredIDs == committed, "in commit and statement order")
            #expect(peakRSS > 0 && peakRSS < 200_000, "peak RSS \(peakRSS) kB while streaming a 200k-row transaction")
        }
    }

    @Test("kill -9 after the first batch of a large transaction reached the sink: the restart delivers the rest of it, none lost, none twice beyond the unacknowledged")
    func killInsideALargeTransaction() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "wal", kind: "replication", extraSource: "  batch_size: 50")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            try await app.execute("INSERT INTO products VALUES (0, 'before')")
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await waitForStatus(configPath, timeout: .seconds(90), "the first change to be acknowledged") { $0["events_total"]?.plainText == "1" }
            let before = fileSize(sink)

            // 20,000 changes in one transaction: 400 batches of 50.
            try await app.execute("INSERT INTO products SELECT g, 'bulk' || g FROM generate_series(1, 20000) g")
            try await waitForGrowth(sink, beyond: before)
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atKill = try readEvents(sink, isStillWriting: true)  // killed mid-write: a torn last line was never acknowledged
            let checkpoint = try await CheckpointRow.read(consumer: "wal", on: app)
            #expect(atKill.count > 1, "the transaction's first batch reached the sink before the kill")
            #expect(checkpoint.eventsTotal < 20_001, "the kill landed inside the transaction: \(checkpoint)")
            if checkpoint.eventsTotal > 1 {
                #expect(checkpoint.batchSeq != nil, "a partly delivered transaction keeps its index in the checkpoint: \(checkpoint)")
            }

            let restarted = try SpillwayProcess(["run", "--config", configPath])
            try await waitForStatus(configPath, timeout: .seconds(60), "all 20,001 changes to be acknowledged") {
                $0["events_total"]?.plainText == "20001"
            }
            try await restarted.waitForLog("replication started")
            restarted.signal(SIGTERM)
            #expect(try await restarted.wait() == 0, "\(restarted.stderr.suffix(2000))")

            let events = try readEvents(sink)
            try expectResumedFromCheckpoint(atKill: atKill, checkpoint: checkpoint, all: events, isOrderFixed: true)
            let bulk = firstDeliveries(events).filter { $0.key != ["id": .number("0")] }
            #expect(bulk.compactMap { $0.key?["id"]?.plainText } == (1...20_000).map(String.init), "every change of the transaction, in order")
            let commits = Set(bulk.map { $0.position.split(separator: ":").first.map(String.init) ?? "" })
            #expect(commits.count == 1, "one commit LSN for the whole transaction: \(commits.prefix(3))")
            let indices = bulk.compactMap { $0.position.split(separator: ":").last.flatMap { Int($0) } }
            #expect(indices.count == 20_000 && zip(indices, indices.dropFirst()).allSatisfy { $1 == $0 + 1 },
                    "indices within the transaction are consecutive: none skipped at the restart")
            #expect(Set(bulk.compactMap(\.txid)).count == 1)
        }
    }

    @Test("quiet published tables while another table writes heavily: the heartbeat keeps retained WAL bounded")
    func idleSlotDoesNotBloat() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY); CREATE TABLE noise (id serial, payload text)")
            let (configPath, _) = try db.writeConfig(consumer: "wal", kind: "replication", extraSource: "  heartbeat: 500ms")
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await runner.waitForLog("replication started")
            // Some 15 MB of WAL the slot must decode and skip. The bound is generous: on a loaded CI machine
            // the walsender shares the CPU with every other test's (a 30 s bound once ran out 38 MB behind).
            for _ in 0..<4 {
                try await app.execute("INSERT INTO noise (payload) SELECT repeat(md5(random()::text), 10) FROM generate_series(1, 10000)")
            }
            let written = try await app.query("SELECT pg_current_wal_lsn()::text")
            var confirmedLag = Int64.max
            let clock = ContinuousClock()
            let started = clock.now
            let deadline = started + .seconds(120)
            while clock.now < deadline {
                let lag = try await app.query(
                    "SELECT pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $2",
                    [written.first?[0], db.slotName(consumer: "wal")])
                confirmedLag = Int64(lag.first?[0] ?? "") ?? .max
                if confirmedLag <= 0 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(confirmedLag <= 0, "the slot confirmed past the noise (\(confirmedLag) bytes behind)")
            print("heartbeat: the slot confirmed past the noise after \(started.duration(to: clock.now))")
            let status = try await SpillwayProcess.run(["status", "--json", "--config", configPath])
            let json = try JSONParser.parse(status.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue
            #expect(json?["slot_status"] != .string("lost"))
            #expect(json?["retained_wal_bytes"] != nil && json?["retained_wal_bytes"] != .null)
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
        }
    }
}

/// VmRSS of a process in kB (0 when it is gone).
func residentKilobytes(of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return 0
}
