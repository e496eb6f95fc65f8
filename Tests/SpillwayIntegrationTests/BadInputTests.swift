import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// What others do to the database while `run` streams: a slot dropped from outside, a captured table
/// dropped or renamed, its primary key changed. Each gives correct output or stops with an error that names
/// the table (or slot) and the fix, exits non-zero, and never skips a change silently.
@Suite("bad input: slots, tables and keys changed under a running consumer", .enabled(if: TestEnvironment.canRun))
struct BadInputTests {
    static let sources = SourceKind.allCases.map(\.rawValue)

    @Test("a replication slot dropped from outside stops `run` (exit 1, naming the slot and the recovery); install warns of the gap")
    func slotDroppedWhileRunning() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (configPath, sink) = try db.writeConfig(consumer: "c", kind: "replication")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await app.execute("INSERT INTO products VALUES (1)")
            try await waitForEvents(sink, "the first insert") { $0.count == 1 }
            try await waitForStatus(configPath, "the checkpoint at the insert") { $0["events_total"] == .number("1") }

            // A slot in use cannot be dropped: end its walsender first, until the drop wins over the reconnect.
            let slot = db.slotName(consumer: "c")
            var dropped = false
            for _ in 0..<200 where !dropped {
                _ = try await app.query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", [slot])
                do {
                    try await app.query("SELECT pg_drop_replication_slot($1)", [slot])
                    dropped = true
                } catch {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            try #require(dropped, "the slot could be dropped")
            #expect(try await runner.wait() == 1, "fatal: \(runner.stderr)")
            #expect(runner.stderr.contains("replication slot '\(slot)' was dropped") && runner.stderr.contains("spillway install"),
                    "\(runner.stderr)")

            try await app.execute("INSERT INTO products VALUES (2)")  // no slot holds this one
            let reinstalled = try await SpillwayProcess.run(["install", "--config", configPath])
            #expect(reinstalled.code == 0, "\(reinstalled.stderr)")
            #expect(reinstalled.stdout.contains("warning: created a new replication slot \(slot)"), "\(reinstalled.stdout)")
            try await app.execute("INSERT INTO products VALUES (3)")
            let ran = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            try #require(ran.code == 0, "\(ran.stderr)")
            #expect(firstDeliveries(try readEvents(sink)).map { $0.key?["id"] } == [.number("1"), .number("3")])
        }
    }

    @Test("a captured table dropped while `run` streams: its changes before the drop are delivered, then exit 1 naming it", arguments: Self.sources)
    func tableDroppedWhileStreaming(kind: String) async throws {
        try await withTestDatabase("dropped_\(kind)") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text); CREATE TABLE orders (id int PRIMARY KEY)")
            let (configPath, sink) = try db.writeConfig(tables: ["public.products", "public.orders"], consumer: "c", kind: kind)
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await app.execute("INSERT INTO products VALUES (1, 'a')")
            try await waitForEvents(sink, "the first insert") { $0.count == 1 }
            try await app.execute("INSERT INTO products VALUES (2, 'b'), (3, 'c')")
            try await app.execute("INSERT INTO orders VALUES (1)")
            try await app.execute("DROP TABLE products")
            try await app.execute("INSERT INTO orders VALUES (2)")
            #expect(try await runner.wait() == 1, "fatal: \(runner.stderr)")
            #expect(runner.stderr.contains("table public.products (source.tables[0]) was dropped")
                    && runner.stderr.contains("remove it from source.tables"), "\(runner.stderr)")
            let atStop = firstDeliveries(try readEvents(sink))
            #expect(atStop.filter { $0.table == "products" }.map { $0.key?["id"] } == [1, 2, 3].map { JSONValue.number("\($0)") },
                    "every change before the drop: \(atStop.map(\.id))")
            #expect(atStop.prefix(4).map(\.table) == ["products", "products", "products", "orders"])

            // Fixed as the error says: what was held comes next, nothing twice.
            let (fixedPath, _) = try db.writeConfig(tables: ["public.orders"], consumer: "c", kind: kind, sinkPath: sink)
            let ran = try await SpillwayProcess.run(["run", "--once", "--config", fixedPath])
            try #require(ran.code == 0, "\(ran.stderr)")
            let events = try readEvents(sink)
            #expect(events.map(\.id) == firstDeliveries(events).map(\.id), "nothing delivered twice")
            #expect(events.map { "\($0.table):\($0.key?["id"].map(JSONEncoding.string) ?? "null")" }
                    == ["products:1", "products:2", "products:3", "orders:1", "orders:2"])
        }
    }

    @Test("a captured table renamed while `run` streams: exit 1 naming both names; after the fix, nothing lost or doubled", arguments: Self.sources)
    func tableRenamedWhileStreaming(kind: String) async throws {
        try await withTestDatabase("renamed_\(kind)") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "c", kind: kind)
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await app.execute("INSERT INTO products VALUES (1, 'a')")
            try await waitForEvents(sink, "the first insert") { $0.count == 1 }
            try await app.execute("ALTER TABLE products RENAME TO items")
            try await app.execute("INSERT INTO items VALUES (2, 'b')")
            #expect(try await runner.wait() == 1, "fatal: \(runner.stderr)")
            #expect(runner.stderr.contains("table public.products (source.tables[0]) was renamed to public.items")
                    && runner.stderr.contains("replace it with public.items in source.tables"), "\(runner.stderr)")
            // Started again unchanged, it refuses at once (a configuration problem now) and delivers nothing.
            let before = try readEvents(sink).count
            let again = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(again.code == 2, "\(again.code) \(again.stderr)")
            // The audit trigger still records the old name, which finds the new one; a slot cannot tell.
            #expect(again.stderr.contains("source.tables[0]") && again.stderr.contains("table public.products does not exist")
                    && again.stderr.contains(kind == "audit_log" ? "renamed to public.items" : "dropped or renamed"), "\(again.stderr)")
            #expect(try readEvents(sink).count == before)

            try await app.execute("INSERT INTO items VALUES (3, 'c')")
            let (fixedPath, _) = try db.writeConfig(tables: ["public.items"], consumer: "c", kind: kind, sinkPath: sink)
            let ran = try await SpillwayProcess.run(["run", "--once", "--config", fixedPath])
            try #require(ran.code == 0, "\(ran.stderr)")
            // `install` with the new name, then more changes.
            let installed = try await SpillwayProcess.run(["install", "--config", fixedPath])
            try #require(installed.code == 0, "\(installed.stderr)")
            try await app.execute("INSERT INTO items VALUES (4, 'd'); UPDATE items SET name = 'e' WHERE id = 1")
            let ranAgain = try await SpillwayProcess.run(["run", "--once", "--config", fixedPath])
            try #require(ranAgain.code == 0, "\(ranAgain.stderr)")

            let events = try readEvents(sink)
            #expect(events.map(\.id) == firstDeliveries(events).map(\.id), "nothing delivered twice")
            #expect(events.map { $0.key?["id"] } == [1, 2, 3, 4, 1].map { JSONValue.number("\($0)") }, "\(events.map(\.id))")
            #expect(events.map(\.op) == [.insert, .insert, .insert, .insert, .update])
            try #require(events.count == 5)
            #expect(events[0].table == "products" && events[2...].allSatisfy { $0.table == "items" }, "\(events.map(\.table))")
            if kind == "replication" { #expect(events[1].table == "items", "nothing after the rename under the old name") }
        }
    }

    @Test("a primary key changed mid-stream: changes keyed by the new key from then on, never a null key", arguments: Self.sources)
    func primaryKeyChanged(kind: String) async throws {
        try await withTestDatabase("pk_\(kind)") { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL, name text)")
            let (configPath, sink) = try db.writeConfig(consumer: "c", kind: kind)
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await app.execute("INSERT INTO products VALUES (1, 'a', 'x'), (2, 'b', 'y')")
            try await waitForEvents(sink, "the inserts") { $0.count == 2 }
            try await app.execute("ALTER TABLE products DROP CONSTRAINT products_pkey, ADD PRIMARY KEY (sku)")
            try await app.execute("INSERT INTO products VALUES (3, 'c', 'z')")
            try await app.execute("UPDATE products SET name = 'w' WHERE sku = 'a'")
            try await app.execute("DELETE FROM products WHERE sku = 'b'")
            try await waitForEvents(sink, "the changes after the new key") { $0.count == 5 }
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)

            // Stopped meanwhile: changes on both sides of another key change are read after it.
            try await app.execute("INSERT INTO products VALUES (4, 'd', 'q')")
            try await app.execute("DELETE FROM products WHERE sku = 'a'")
            try await app.execute("ALTER TABLE products DROP CONSTRAINT products_pkey, ADD PRIMARY KEY (id)")
            try await app.execute("INSERT INTO products VALUES (5, 'e', 'r')")
            try await app.execute("DELETE FROM products WHERE id = 4")
            let ran = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            try #require(ran.code == 0, "\(ran.stderr)")

            let events = try readEvents(sink)
            func key(_ event: ChangeEvent) -> String { event.key.map { JSONEncoding.string(.object($0)) } ?? "null" }
            try #require(events.count == 9, "\(events.map(key))")
            #expect(events.prefix(5).map(key) == [#"{"id":1}"#, #"{"id":2}"#, #"{"sku":"c"}"#, #"{"sku":"a"}"#, #"{"sku":"b"}"#])
            #expect(events.allSatisfy { event in event.key.map { k in k.names.allSatisfy { k[$0] != .null } } == true }, "no null key: \(events.map(key))")
            // The replication source keys a change by the primary key it was written under (pgoutput's flags, from
            // the catalog of that moment); the audit_log source by the key when it reads the batch.
            let lagging = kind == "replication"
                ? [#"{"sku":"d"}"#, #"{"sku":"a"}"#, #"{"id":5}"#, #"{"id":4}"#]
                : [#"{"id":4}"#, #"{"id":1}"#, #"{"id":5}"#, #"{"id":4}"#]
            #expect(events.suffix(4).map(key) == lagging)
            #expect(events.suffix(4).map(\.op) == [.insert, .delete, .insert, .delete])
        }
    }
}
