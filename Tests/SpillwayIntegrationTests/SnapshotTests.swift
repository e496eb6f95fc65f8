import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// `source.snapshot: initial`: a new consumer emits the rows its tables already hold as `op: read` events,
/// chunk by chunk while changes stream, and ends, per key, with the table's state.
@Suite("initial snapshot (source.snapshot: initial)", .serialized)
struct SnapshotTests {
    /// The sink's events folded per key, as a consumer applying them would: read, insert and update set the
    /// row, delete removes it. Keyed by the `id` column.
    static func fold(_ events: [ChangeEvent]) -> [Int: JSONObject] {
        var rows: [Int: JSONObject] = [:]
        for event in events {
            guard let id = event.key?["id"].flatMap({ Int($0.plainText) }) else { continue }
            switch event.op {
            case .read, .insert, .update: rows[id] = event.after
            case .delete: rows[id] = nil
            case .truncate, .message: continue
            }
        }
        return rows
    }

    /// The table as rows (`id`, `v`, `note`), the same shape the events carry.
    static func tableState(_ db: TestDatabase, _ table: String = "items") async throws -> [Int: JSONObject] {
        let app = try await db.connect()
        let result = try await app.query("SELECT id::text, v::text, note FROM \(table) ORDER BY id")
        var rows: [Int: JSONObject] = [:]
        for row in result.rows {
            guard let id = row[0].flatMap({ Int($0) }) else { continue }
            rows[id] = ["id": .number(row[0]!), "v": row[1].map(JSONValue.number) ?? .null, "note": row[2].map(JSONValue.string) ?? .null]
        }
        return rows
    }

    @Test("existing rows arrive once as read events (keyed, before null, stable ids), changes made since install follow, and the sink ends with the table's state", arguments: SourceKind.allCases)
    func initialSnapshot(kind: SourceKind) async throws {
        try await withTestDatabase("snapshot_\(kind.rawValue)") { db in
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE items (id int PRIMARY KEY, v int, note text);
                INSERT INTO items SELECT g, g * 10, 'n' || g FROM generate_series(1, 25) g;
                CREATE TABLE empty_one (id int PRIMARY KEY, v int, note text)
                """)
            let (configPath, sink) = try db.writeConfig(tables: ["public.items", "public.empty_one"], consumer: "c", kind: kind.rawValue,
                                                        extraSource: "  snapshot: initial\n  snapshot_chunk_size: 10\n  batch_size: 4")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "\(installed.stderr)")
            // Changes after install, before `run` reads any chunk: the stream has them, the chunks see their result.
            try await app.execute("UPDATE items SET v = -3 WHERE id = 3; DELETE FROM items WHERE id = 5; INSERT INTO items VALUES (100, 1, 'new')")

            let ran = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            try #require(ran.code == 0, "\(ran.stderr)")
            let events = try readEvents(sink)
            let reads = events.filter { $0.op == .read }
            #expect(reads.map { $0.key?["id"] } == ((1...25).filter { $0 != 5 } + [100]).map { JSONValue.number(String($0)) },
                    "every row once, in key order: \(reads.map { $0.key.map { JSONEncoding.string(.object($0)) } ?? "-" })")
            #expect(reads.allSatisfy { $0.before == nil && $0.schema == "public" && $0.table == "items" && $0.txid == nil })
            #expect(Set(events.map(\.id)).count == events.count, "ids are unique")
            #expect(reads.first { $0.key?["id"] == .number("3") }?.after?["v"] == .number("-3"), "a chunk shows the changes before it")
            #expect(events.filter { $0.op != .read }.map(\.op) == [.update, .delete, .insert])
            #expect(Self.fold(events) == (try await Self.tableState(db)))

            let status = try await statusJSON(configPath)
            let snapshot = try #require(status["snapshot"]?.objectValue, "status shows the snapshot: \(status)")
            #expect(snapshot["done"] == .bool(true))
            #expect(snapshot["rows"] == .number("25"), "\(snapshot)")

            // Done once: a later run and `install` again read no table again.
            try await app.execute("UPDATE items SET v = 7 WHERE id = 1")
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let again = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            try #require(again.code == 0, "\(again.stderr)")
            let later = Array(try readEvents(sink).dropFirst(events.count))
            #expect(later.map(\.op) == [.update], "\(later.map(\.id))")
        }
    }

    @Test("a table without a primary key: install exits 2 naming source.snapshot and the table; nothing is installed", arguments: SourceKind.allCases)
    func tableWithoutPrimaryKey(kind: SourceKind) async throws {
        try await withTestDatabase("snapshot_nopk_\(kind.rawValue)") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE items (id int PRIMARY KEY, v int, note text); CREATE TABLE loose (a int, b text) ")
            let (configPath, _) = try db.writeConfig(tables: ["public.items", "public.loose"], consumer: "c", kind: kind.rawValue,
                                                     extraSource: "  snapshot: initial")
            let refused = try await SpillwayProcess.run(["install", "--config", configPath])
            #expect(refused.code == 2, "\(refused.stdout)\(refused.stderr)")
            #expect(refused.stderr.contains("source.snapshot") && refused.stderr.contains("public.loose") && refused.stderr.contains("primary key"),
                    "\(refused.stderr)")
            let checkpoints = try await app.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'spillway' AND tablename = 'checkpoints'")
            if checkpoints.first?[0] == "1" {
                #expect(try await app.query("SELECT count(*) FROM spillway.checkpoints").first?[0] == "0", "no consumer half-installed")
            }
            #expect(try await app.query("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()").first?[0] == "0")
        }
    }

    @Test("writers update, insert and delete while the snapshot runs; kill -9 mid-snapshot resumes from the last acknowledged chunk (not from zero), every row appears, and per key the sink ends with the table's state", arguments: SourceKind.allCases)
    func killedMidSnapshotUnderWriters(kind: SourceKind) async throws {
        try await withTestDatabase("snapshot_kill_\(kind.rawValue)") { db in
            // Large enough that the kill lands mid-snapshot on a loaded machine (the test process can be starved
            // for seconds while the runner streams), as the issue asks: 200k rows.
            let rows = 200_000, chunk = 2_000
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE items (id int PRIMARY KEY, v int, note text);
                INSERT INTO items SELECT g, 0, 'seed' FROM generate_series(1, \(rows)) g;
                CREATE SEQUENCE new_ids START 1000000
                """)
            let (configPath, sink) = try db.writeConfig(tables: ["public.items"], consumer: "c", kind: kind.rawValue,
                                                        extraSource: "  snapshot: initial\n  snapshot_chunk_size: \(chunk)\n  batch_size: 500")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "\(installed.stderr)")

            let writers = Task {
                let writer = try await db.connect()
                var round = 0
                while !Task.isCancelled {
                    round += 1
                    do {
                        // Ids chosen here, not by random() in the WHERE (volatile: evaluated per row, a full scan).
                        try await writer.execute("UPDATE items SET v = v + 1, note = 'w\(round)' WHERE id = \(Int.random(in: 1...rows))")
                        if round % 5 == 0 {
                            try await writer.execute("""
                                BEGIN; INSERT INTO items VALUES (nextval('new_ids'), 0, 'ins'), (\(rows + Int.random(in: 1...rows)), 0, 'gap') ON CONFLICT DO NOTHING;
                                DELETE FROM items WHERE id = \(Int.random(in: 1...rows)); COMMIT
                                """)
                        }
                    } catch where Task.isCancelled {
                        break
                    }
                    // About 200 writes a second: enough to race every chunk, without starving the tests that
                    // run beside this one.
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return round
            }
            defer { writers.cancel() }

            var runner = try SpillwayProcess(["run", "--config", configPath])
            try await waitForGrowth(sink, beyond: 150_000, timeout: .seconds(60))
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let saved = try await app.query("SELECT snapshot_progress::text FROM spillway.checkpoints WHERE consumer = 'c'").first?[0]
            let progress = try #require(saved.flatMap { $0 }.flatMap { SnapshotProgress(json: $0) }, "progress saved: \(String(describing: saved))")
            try #require(!progress.isDone, "killed in the middle of the snapshot (make the table larger if this machine is faster)")
            let resumeAfter = try #require(progress.tables[0].lastKey.flatMap { $0.first }.flatMap { Int($0) }, "a chunk was acknowledged")
            #expect(resumeAfter > 0 && progress.tables[0].rows >= Int64(resumeAfter) - Int64(chunk))
            let linesBeforeRestart = try readEvents(sink).count

            runner = try SpillwayProcess(["run", "--config", configPath])
            _ = try await waitForStatus(configPath, timeout: .seconds(240), "the snapshot to end") { status in
                status["snapshot"]?.objectValue?["done"] == .bool(true)
            }
            writers.cancel()
            let written = try await writers.value
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
            let drained = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            try #require(drained.code == 0, "\(drained.stderr)")

            let events = try readEvents(sink)
            let afterRestart = events.dropFirst(linesBeforeRestart).filter { $0.op == .read }
            let firstKey = try #require(afterRestart.first?.key?["id"].flatMap { Int($0.plainText) })
            #expect(firstKey > resumeAfter, "resumed after the saved chunk (\(resumeAfter)), not from zero: first key read \(firstKey)")
            #expect(firstKey <= resumeAfter + chunk, "nothing skipped either: the next rows come first")
            let reads = events.filter { $0.op == .read }
            #expect(reads.count < rows + rows / 2, "each row read about once: \(reads.count) reads for \(rows) rows")
            let state = try await Self.tableState(db)
            let folded = Self.fold(events)
            #expect(folded.count == state.count, "\(folded.count) rows at the sink, \(state.count) in the table (\(written) writer rounds)")
            let wrong = state.filter { folded[$0.key] != $0.value }.map(\.key).sorted()
            #expect(wrong.isEmpty, "rows whose last event is not the table's value: \(wrong.prefix(10)) (e.g. table \(wrong.first.flatMap { state[$0] }.map { JSONEncoding.string(.object($0)) } ?? "-"), sink \(wrong.first.flatMap { folded[$0] }.map { JSONEncoding.string(.object($0)) } ?? "-"))")
            #expect(folded.keys.filter { state[$0] == nil }.isEmpty, "no row the table no longer has")
            // Every seed row that no writer touched arrived through the snapshot.
            let untouched = try await app.query("SELECT count(*) FROM items WHERE note = 'seed'").first?[0].flatMap { Int($0) } ?? -1
            #expect(Set(reads.compactMap { $0.after?["note"] == .string("seed") ? $0.key?["id"]?.plainText : nil }).count >= untouched)
        }
    }
}

@Suite("online backfill (spillway backfill)", .serialized)
struct BackfillTests {
    @Test("requests queued while `run` is stopped survive and run in order; a backfill with --where while writers change it and another table streams: only matching rows are read, no stale row wins, progress reaches 100%", arguments: SourceKind.allCases)
    func backfillWhileStreaming(kind: SourceKind) async throws {
        try await withTestDatabase("backfill_\(kind.rawValue)") { db in
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE items (id int PRIMARY KEY, v int, note text);
                INSERT INTO items SELECT g, 0, 'seed' FROM generate_series(1, 6000) g;
                CREATE TABLE other (id int PRIMARY KEY, v int, note text)
                """)
            let (configPath, sink) = try db.writeConfig(tables: ["public.items", "public.other"], consumer: "c", kind: kind.rawValue,
                                                        extraSource: "  snapshot_chunk_size: 300\n  batch_size: 100")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)

            // Queued with no runner: kept, and taken in order once one starts.
            let first = try await SpillwayProcess.run(["backfill", "--config", configPath, "--table", "public.items", "--where", "id <= 10", "--no-follow"])
            try #require(first.code == 0, "\(first.stderr)")
            #expect(first.stdout.contains("backfill 1 queued: public.items where id <= 10"), "\(first.stdout)")
            try await app.execute("INSERT INTO other VALUES (1, 1, 'o')")
            let second = try await SpillwayProcess.run(["backfill", "--config", configPath, "--table", "public.other", "--no-follow"])
            try #require(second.code == 0, "\(second.stderr)")
            let runner = try SpillwayProcess(["run", "--config", configPath])
            _ = try await waitForStatus(configPath, timeout: .seconds(60), "both queued backfills to end") { status in
                status["backfills"].map { $0 == .array([]) } == false
                    && status["backfills"].flatMap { value -> Bool? in
                        guard case .array(let items) = value else { return nil }
                        return items.count == 2 && items.allSatisfy { $0.objectValue?["state"] == .string("done") }
                    } == true
            }
            let early = try readEvents(sink, isStillWriting: true)
            let earlyReads = early.filter { $0.op == .read }
            #expect(earlyReads.map { "\($0.table):\($0.key?["id"]?.plainText ?? "-")" } == (1...10).map { "items:\($0)" } + ["other:1"],
                    "in request order, only the matching rows")
            #expect(earlyReads.first?.id == #"backfill-1:public.items:{"id":1}"#)

            // The big one, followed to its end, while writers change the table and the other table streams.
            let writers = Task {
                let writer = try await db.connect()
                var round = 0
                while !Task.isCancelled {
                    round += 1
                    do {
                        try await writer.execute("""
                            UPDATE items SET v = v + 1, note = 'w\(round)' WHERE id = \(Int.random(in: 1...6000));
                            INSERT INTO other VALUES (\(round + 1), \(round), 'o')
                            """)
                        if round % 7 == 0 { try await writer.execute("DELETE FROM items WHERE id = \(Int.random(in: 1...6000))") }
                    } catch where Task.isCancelled {
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return round
            }
            defer { writers.cancel() }
            let followed = try await SpillwayProcess.run(["backfill", "--config", configPath, "--table", "public.items",
                                                          "--where", "id % 2 = 0", "--follow"], timeout: .seconds(120))
            writers.cancel()
            let rounds = try await writers.value
            #expect(followed.code == 0, "\(followed.stderr)")
            #expect(followed.stderr.contains("backfill 3 [####################] 100%") && followed.stderr.contains("done"), "\(followed.stderr)")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)

            let events = try readEvents(sink)
            let reads = events.filter { $0.op == .read && $0.id.hasPrefix("backfill-3:") }
            #expect(reads.allSatisfy { ($0.key?["id"].flatMap { Int($0.plainText) } ?? 1) % 2 == 0 }, "only rows matching --where")
            let itemEvents = events.filter { $0.table == "items" }
            let folded = SnapshotTests.fold(itemEvents)
            let state = try await SnapshotTests.tableState(db)
            let even = state.filter { $0.key % 2 == 0 }
            #expect(even.allSatisfy { folded[$0.key] == $0.value },
                    "every even row ends with the table's value: \(even.filter { folded[$0.key] != $0.value }.map(\.key).sorted().prefix(10))")
            #expect(folded.filter { state[$0.key] == nil }.isEmpty, "no deleted row comes back")
            #expect(Set(reads.compactMap { $0.key?["id"]?.plainText }).count + 50 >= even.count, "about every even row was read")
            let others = Set(events.filter { $0.table == "other" && $0.op == .insert }.compactMap { $0.key?["id"]?.plainText })
            let committed = try await app.query("SELECT count(*) FROM other").first?[0].flatMap { Int($0) } ?? -1
            #expect(others.count == committed && committed >= rounds, "the other table kept streaming: \(others.count) of \(committed) inserts")
            let status = try await statusJSON(configPath)
            guard case .array(let requests)? = status["backfills"], let last = requests.last?.objectValue else {
                Issue.record("status has no backfills: \(status)"); return
            }
            #expect(last["state"] == .string("done") && last["id"] == .number("3"))
            #expect(last["rows"].flatMap { Int($0.plainText) }.map { $0 >= even.count && $0 <= 3000 } == true, "\(last)")
        }
    }

    @Test("bad requests: a table not captured, a --where that does not parse, a table without a primary key, a consumer not installed — exit 2 naming the flag, nothing queued")
    func badRequests() async throws {
        try await withTestDatabase("backfill_bad") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE items (id int PRIMARY KEY, v int, note text); CREATE TABLE loose (a int)")
            let (configPath, _) = try db.writeConfig(tables: ["public.items", "public.loose"], consumer: "c")
            let early = try await SpillwayProcess.run(["backfill", "--config", configPath, "--table", "public.items", "--no-follow"])
            #expect(early.code == 2 && early.stderr.contains("consumer") && early.stderr.contains("spillway install"), "\(early.stderr)")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            for (arguments, key, text) in [
                (["--table", "public.nope"], "--table", "is not in source.tables"),
                (["--table", "public.items", "--where", "id = = 3"], "--where", "syntax error"),
                (["--table", "public.items", "--where", "missing_column = 1"], "--where", "missing_column"),
                (["--table", "public.items", "--where", " "], "--where", "is empty"),
                (["--table", "public.loose"], "--table", "has no primary key"),
            ] {
                let refused = try await SpillwayProcess.run(["backfill", "--config", configPath, "--no-follow"] + arguments)
                #expect(refused.code == 2, "\(arguments): \(refused.stdout)\(refused.stderr)")
                #expect(refused.stderr.contains(key) && refused.stderr.contains(text), "\(arguments): \(refused.stderr)")
            }
            #expect(try await app.query("SELECT count(*) FROM spillway.backfills").first?[0] == "0", "nothing queued")
        }
    }
}

@Suite("spillway checkpoint show|set")
struct CheckpointCommandTests {
    @Test("set needs --yes; `now` skips what is committed, later changes arrive; show prints the row; bad positions exit 2 naming --position", arguments: SourceKind.allCases)
    func showAndSet(kind: SourceKind) async throws {
        try await withTestDatabase("checkpoint_\(kind.rawValue)") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "c", kind: kind.rawValue)
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try await app.execute("INSERT INTO products VALUES (1, 'a'), (2, 'b')")
            let unconfirmed = try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "now"])
            #expect(unconfirmed.code == 2 && unconfirmed.stderr.contains("--yes"), "\(unconfirmed.stderr)")
            let moved = try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "now", "--yes"])
            try #require(moved.code == 0, "\(moved.stderr)")
            try await app.execute("INSERT INTO products VALUES (3, 'c')")
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(try readEvents(sink).map { $0.key?["id"] } == [.number("3")], "only the change after the move")

            let shown = try await SpillwayProcess.run(["checkpoint", "show", "--json", "--config", configPath])
            try #require(shown.code == 0, "\(shown.stderr)")
            let row = try #require(JSONParser.parse(shown.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue)
            #expect(row["consumer"] == .string("c") && row["source"] == .string(kind.rawValue) && row["events_total"] == .number("1"), "\(row)")
            let text = try await SpillwayProcess.run(["checkpoint", "show", "--config", configPath])
            #expect(text.stdout.contains("consumer:") && text.stdout.contains("events_total:"), "\(text.stdout)")

            switch kind {
            case .auditLog:
                let bad = try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "0/16B3748", "--yes"])
                #expect(bad.code == 2 && bad.stderr.contains("--position") && bad.stderr.contains("start"), "\(bad.stderr)")
                try #require(try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "start", "--yes"]).code == 0)
                try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
                let events = try readEvents(sink)
                #expect(events.map { $0.key?["id"] } == [.number("3"), .number("1"), .number("2"), .number("3")], "replayed from the start")
                #expect(events[3].id == events[0].id, "with the same ids")
            case .replication:
                let before = try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "0/10", "--yes"])
                #expect(before.code == 2 && before.stderr.contains("--position") && before.stderr.contains("confirmed"), "\(before.stderr)")
                let notLSN = try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "yesterday", "--yes"])
                #expect(notLSN.code == 2 && notLSN.stderr.contains("not an LSN"), "\(notLSN.stderr)")
            }
            // A running consumer's checkpoint is not moved.
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await runner.waitForLog(kind == .replication ? "replication started" : "reading")
            let busy = try await SpillwayProcess.run(["checkpoint", "set", "--config", configPath, "--position", "now", "--yes"])
            #expect(busy.code == 1 && busy.stderr.contains("is running"), "\(busy.stderr)")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
        }
    }
}

/// The replay tests' start: products with a file sink `out` and a second one (plus `extraSinks`), installed, six
/// changes in three transactions delivered once. Returns the config and both sinks' paths.
private func replayFixture(_ db: TestDatabase, app: PostgresConnection, consumer: String, kind: String = "audit_log",
                           extraSinks: String = "") async throws -> (config: String, sink: String, second: String) {
    try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
    let (configPath, sink) = try db.writeConfig(consumer: consumer, kind: kind)
    let second = URL(fileURLWithPath: sink).deletingLastPathComponent().appendingPathComponent("second.jsonl").path
    var yaml = try String(contentsOfFile: configPath, encoding: .utf8)
    yaml += "\n  - name: second\n    kind: file\n    path: \(second)\n" + extraSinks
    try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
    try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
    try await app.execute("INSERT INTO products VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    try await app.execute("INSERT INTO products VALUES (4, 'd'), (5, 'e')")
    try await app.execute("UPDATE products SET name = 'A' WHERE id = 1")
    try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
    return (configPath, sink, second)
}

@Suite("spillway replay: the audit_log table, the replication archive")
struct ReplayTests {
    @Test("a window by position or time re-emits exactly its changes with the first run's ids, to one sink or all, beside a live run whose checkpoint stays; a start not retained names the horizon; replication refuses")
    func replayWindow() async throws {
        try await withTestDatabase("replay") { db in
            let app = try await db.connect()
            let (configPath, sink, second) = try await replayFixture(db, app: app, consumer: "c")
            let first = try readEvents(sink)
            try #require(first.count == 6)
            let checkpoint = try await statusJSON(configPath)

            // Live `run` beside it: the replay takes no lock and moves no checkpoint.
            let live = try SpillwayProcess(["run", "--config", configPath])
            try await live.waitForLog("reading")
            let byPosition = try await SpillwayProcess.run(["replay", "--config", configPath, "--from", first[3].position,
                                                            "--until", first[4].position, "--sink", "out"])
            try #require(byPosition.code == 0, "\(byPosition.stderr)")
            #expect(byPosition.stdout.contains("replayed 2 events"), "\(byPosition.stdout)")
            var all = try readEvents(sink)
            #expect(all.dropFirst(6).map(\.id) == first[3...4].map(\.id), "exactly the window, same ids")
            #expect(Array(all.dropFirst(6)) == Array(first[3...4]), "the same events")
            #expect(try readEvents(second).count == 6, "--sink: the other sink got nothing")

            let byTime = try await SpillwayProcess.run(["replay", "--config", configPath, "--since", try #require(first[3].commitTime)])
            try #require(byTime.code == 0, "\(byTime.stderr)")
            all = try readEvents(sink)
            #expect(all.dropFirst(8).map(\.id) == first[3...5].map(\.id), "from that commit on, to every sink")
            #expect(try readEvents(second).dropFirst(6).map(\.id) == first[3...5].map(\.id))
            let onlyTable = try await SpillwayProcess.run(["replay", "--config", configPath, "--from", first[0].position, "--table", "public.products", "--sink", "second"])
            #expect(onlyTable.code == 0 && onlyTable.stdout.contains("replayed 6 events"), "\(onlyTable.stdout)\(onlyTable.stderr)")

            let status = try await statusJSON(configPath)
            #expect(status["events_total"] == checkpoint["events_total"] && status["position"] == checkpoint["position"],
                    "the consumer's checkpoint is unchanged: \(status)")
            live.signal(SIGTERM)
            #expect(try await live.wait() == 0)

            for (arguments, key, text) in [
                (["--from", "999999/1"], "--from", "is not retained: the oldest retained change is \(first[0].position)"),
                (["--since", "not a time"], "--since", "is not a timestamp"),
                (["--from", "x/y"], "--from", "not an audit_log position"),
                (["--from", first[0].position, "--sink", "nope"], "--sink", "no sink is named 'nope'"),
                (["--from", first[0].position, "--table", "public.other"], "--table", "not one of source.tables"),
                ([String](), "--from", "exactly one of --from"),
            ] {
                let refused = try await SpillwayProcess.run(["replay", "--config", configPath] + arguments)
                #expect(refused.code == 2 && refused.stderr.contains(key) && refused.stderr.contains(text), "\(arguments): \(refused.stderr)")
            }
            #expect(try readEvents(sink).count == 11, "nothing delivered by a refused replay")

            let (replicationConfig, _) = try db.writeConfig(consumer: "r", kind: "replication")
            let refused = try await SpillwayProcess.run(["replay", "--config", replicationConfig, "--since", "2026-01-01"])
            #expect(refused.code == 2 && refused.stderr.contains("sinks") && refused.stderr.contains("no archive sink")
                    && refused.stderr.contains("kind: archive"), "\(refused.stderr)")
        }
    }

    @Test("replication: the archive sink keeps what was delivered; replay sends a window of it again, byte for byte, beside a live run; a start before it names the horizon; retention drops old days")
    func replicationReplayFromTheArchive() async throws {
        try await withTestDatabase("archive") { db in
            let app = try await db.connect()
            let (configPath, sink, second) = try await replayFixture(db, app: app, consumer: "r", kind: "replication",
                                                                     extraSinks: "  - name: archive\n    kind: archive\n    retention: 2d\n")
            let first = try readEvents(sink)
            let firstLines = try String(contentsOfFile: sink, encoding: .utf8).split(separator: "\n").map(String.init)
            try #require(first.count == 6 && firstLines.count == 6)
            let archived = try await app.query("SELECT id FROM spillway.archive WHERE consumer = 'r' ORDER BY seq").rows.map { $0[0] ?? "" }
            #expect(archived == first.map(\.id), "every delivered event archived, in delivery order")
            let checkpoint = try await statusJSON(configPath)

            let live = try SpillwayProcess(["run", "--config", configPath])
            try await live.waitForLog("replication started")
            // first[4] is the second event of the second transaction: a position selects within a transaction.
            let byPosition = try await SpillwayProcess.run(["replay", "--config", configPath, "--from", first[4].position,
                                                            "--until", first[5].position, "--sink", "out"])
            try #require(byPosition.code == 0, "\(byPosition.stderr)")
            #expect(byPosition.stdout.contains("replayed 2 events"), "\(byPosition.stdout)")
            let lines = try String(contentsOfFile: sink, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(Array(lines.dropFirst(6)) == Array(firstLines[4...5]), "exactly the window, the same JSON as the first delivery")
            #expect(try readEvents(second).count == 6, "--sink: the other sink got nothing")

            let byTime = try await SpillwayProcess.run(["replay", "--config", configPath, "--since", try #require(first[3].commitTime)])
            try #require(byTime.code == 0, "\(byTime.stderr)")
            #expect(try readEvents(sink).dropFirst(8).map(\.id) == first[3...5].map(\.id), "from that commit on, to every sink")
            #expect(try readEvents(second).dropFirst(6).map(\.id) == first[3...5].map(\.id))
            let onlyTable = try await SpillwayProcess.run(["replay", "--config", configPath, "--from", first[0].position, "--table", "public.products",
                                                           "--sink", "second"])
            #expect(onlyTable.code == 0 && onlyTable.stdout.contains("replayed 6 events"), "\(onlyTable.stdout)\(onlyTable.stderr)")
            #expect(try await app.query("SELECT count(*) FROM spillway.archive").first?[0] == "6", "a replay is not archived again")

            let status = try await statusJSON(configPath)
            #expect(status["events_total"] == checkpoint["events_total"] && status["position"] == checkpoint["position"],
                    "the consumer's checkpoint is unchanged: \(status)")
            live.signal(SIGTERM)
            #expect(try await live.wait() == 0)

            let oldestLSN = try #require(first[0].position.split(separator: ":").first.map(String.init))
            for (arguments, key, text) in [
                (["--from", "0/1"], "--from", "the oldest archived change is \(first[0].position)"),
                (["--since", "2000-01-01T00:00:00Z"], "--since", "--from \(oldestLSN)"),
                (["--since", "not a time"], "--since", "is not a timestamp"),
                (["--from", "x/y"], "--from", "not a replication position"),
                (["--from", first[0].position, "--sink", "archive"], "--sink", "the archive that replay reads from"),
            ] {
                let refused = try await SpillwayProcess.run(["replay", "--config", configPath] + arguments)
                #expect(refused.code == 2 && refused.stderr.contains(key) && refused.stderr.contains(text), "\(arguments): \(refused.stderr)")
            }
            #expect(try readEvents(sink).count == 11, "nothing delivered by a refused replay")

            // Retention: a day older than `retention: 2d` is dropped when the sink next writes; today's stays.
            try await app.execute("""
                CREATE TABLE spillway.archive_p20200101 PARTITION OF spillway.archive FOR VALUES FROM ('2020-01-01') TO ('2020-01-02');
                INSERT INTO spillway.archive (consumer, day, id, schema_name, table_name, op, event) VALUES ('r', '2020-01-01', 'old', 'public', 'products', 'insert', '{}')
                """)
            try await app.execute("INSERT INTO products VALUES (6, 'f')")
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(try await app.query("SELECT to_regclass('spillway.archive_p20200101') IS NULL").first?[0] == "t", "the old day was dropped")
            #expect(try await app.query("SELECT count(*) FROM spillway.archive WHERE consumer = 'r'").first?[0] == "7")
        }
    }
}

@Suite("source.retention (audit_log)")
struct RetentionTests {
    @Test("rows older than the retention go once every registered consumer passed them; newer ones stay for replay, and a replay before them names the horizon")
    func retentionKeepsAWindow() async throws {
        try await withTestDatabase("retention") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "c", extraSource: "  retention: 1d")
            let (behindPath, _) = try db.writeConfig(consumer: "behind")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try #require(try await SpillwayProcess.run(["install", "--config", behindPath]).code == 0)
            try await app.execute("INSERT INTO products VALUES (1, 'a'); INSERT INTO products VALUES (2, 'b'); INSERT INTO products VALUES (3, 'c')")
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(try readEvents(sink).count == 3)
            try await app.execute("UPDATE spillway.audit_log SET changed_at = now() - interval '2 days' WHERE new_data->>'id' IN ('1', '2')")

            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(try await app.query("SELECT count(*) FROM spillway.audit_log").first?[0] == "3", "a consumer that has not passed them holds them")
            try await app.execute("DELETE FROM spillway.checkpoints WHERE consumer = 'behind'")
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            let left = try await app.query("SELECT new_data->>'id' FROM spillway.audit_log ORDER BY seq").rows.map { $0[0] }
            #expect(left == ["3"], "only the row older than the retention went: \(left)")

            let refused = try await SpillwayProcess.run(["replay", "--config", configPath, "--since", "2000-01-01T00:00:00Z"])
            #expect(refused.code == 2 && refused.stderr.contains("--since") && refused.stderr.contains("oldest retained change"), "\(refused.stderr)")
            let replayed = try await SpillwayProcess.run(["replay", "--config", configPath, "--from", try readEvents(sink)[2].position])
            #expect(replayed.code == 0 && replayed.stdout.contains("replayed 1 events"), "\(replayed.stdout)\(replayed.stderr)")
        }
    }

    @Test("retention: 1MB keeps about a megabyte of the newest audit rows once every registered consumer passed the older ones")
    func retentionKeepsASize() async throws {
        try await withTestDatabase("retention_size") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "c", extraSource: "  retention: 1MB\n  batch_size: 2000")
            let (behindPath, _) = try db.writeConfig(consumer: "behind")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try #require(try await SpillwayProcess.run(["install", "--config", behindPath]).code == 0)
            for first in stride(from: 1, through: 20_000, by: 2_000) {
                try await app.execute("INSERT INTO products SELECT g, repeat('x', 200) FROM generate_series(\(first), \(first + 1_999)) g")
            }
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(try readEvents(sink).count == 20_000)
            #expect(try await app.query("SELECT count(*) FROM spillway.audit_log").first?[0] == "20000", "a consumer that has not passed them holds them")

            try await app.execute("DELETE FROM spillway.checkpoints WHERE consumer = 'behind'")
            try #require(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            let kept = try #require(try await app.query("""
                SELECT count(*), sum(pg_column_size(a.*)), min(id), (SELECT max(id) FROM spillway.audit_log) FROM spillway.audit_log a
                """).first)
            let (rows, bytes) = (Int(kept[0] ?? "") ?? -1, Int(kept[1] ?? "") ?? -1)
            // The bound counts each row's tuple header and index entry too (44 bytes): the rows' data is a bit less.
            #expect(bytes <= 1 << 20 && bytes >= (1 << 20) * 7 / 10, "about 1MB of rows kept: \(rows) rows, \(bytes) bytes")
            #expect(rows > 1_000 && rows < 20_000)
            #expect(Int(kept[3] ?? "") == Int(kept[2] ?? "").map { $0 + rows - 1 }, "the newest rows, none missing among them")
            #expect(try await app.query("SELECT count(*) FROM products").first?[0] == "20000", "the captured table is untouched")
        }
    }
}
