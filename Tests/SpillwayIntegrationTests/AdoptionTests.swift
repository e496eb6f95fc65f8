import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("adopting an existing audit_log", .enabled(if: TestEnvironment.canRun))
struct AdoptionTests {
    static let existingAuditSetup = """
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
        CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
        CREATE TABLE audit_log (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            table_name text NOT NULL,
            operation text NOT NULL,
            old_data jsonb,
            new_data jsonb,
            changed_by text DEFAULT current_user,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE FUNCTION audit_trigger_func() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO audit_log (table_name, operation, old_data, new_data)
            VALUES (TG_TABLE_NAME, TG_OP,
                    CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
                    CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END);
            RETURN COALESCE(NEW, OLD);
        END $$;
        CREATE TRIGGER products_audit AFTER INSERT OR UPDATE OR DELETE ON products
            FOR EACH ROW EXECUTE FUNCTION audit_trigger_func();
        """

    @Test("history rows are kept untouched, delivered once in order, and new changes follow through the same table")
    func adoptWithHistory() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute(Self.existingAuditSetup)
            try await app.execute("INSERT INTO products VALUES (1, 'old kettle', 10)")
            try await app.execute("UPDATE products SET price = 11 WHERE id = 1")
            try await app.execute("INSERT INTO products VALUES (2, 'old lamp', 5)")
            let before = try await app.query("SELECT id::text, table_name, operation, old_data::text, new_data::text, changed_at::text FROM audit_log ORDER BY changed_at, id")

            let (configPath, sink) = try db.writeConfig(consumer: "adopter", extraSource: "  audit_table: public.audit_log")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "\(installed.stderr)")
            #expect(installed.stdout.contains("adopted audit table public.audit_log (3 history rows kept)"))
            #expect(installed.stdout.contains("already audited by their own trigger: public.products"))
            // Installing twice changes nothing.
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)

            let after = try await app.query("SELECT id::text, table_name, operation, old_data::text, new_data::text, changed_at::text FROM audit_log ORDER BY changed_at, id")
            #expect(after.rows == before.rows, "history rows are not rewritten")

            try await app.execute("UPDATE products SET price = 12 WHERE id = 1")
            try await app.execute("DELETE FROM products WHERE id = 2")
            try await app.execute("BEGIN; INSERT INTO products VALUES (3, 'new', 1); INSERT INTO products VALUES (4, 'newer', 2); COMMIT")
            let audited = try await app.query("SELECT count(*) FROM audit_log")
            #expect(audited.first?[0] == "7", "one audit row per change: Spillway added no second trigger")

            let run = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(run.code == 0, "\(run.stderr)")
            let events = try readEvents(sink)
            try #require(events.count == 7, "\(events.map(\.id))")
            #expect(events.map(\.op) == [.insert, .update, .insert, .update, .delete, .insert, .insert])
            #expect(events.prefix(3).allSatisfy { $0.id.hasPrefix("h-") && $0.txid == nil }, "history events use the audit row id")
            #expect(events[1].before?["price"] == .string("10.00") && events[1].after?["price"] == .string("11.00"))
            #expect(events.suffix(4).allSatisfy { $0.txid != nil && $0.schema == "public" && $0.table == "products" })
            #expect(events[4].key == ["id": .number("2")] && events[4].after == nil)

            // A second run delivers nothing again.
            _ = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(try readEvents(sink).count == 7)
        }
    }
}

@Suite("checkpoints, retention and status", .enabled(if: TestEnvironment.canRun))
struct CheckpointTests {
    @Test("two consumers read independently; pruning deletes only rows both have passed")
    func retentionRespectsEveryConsumer() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let sinkA = tempPath("a.jsonl"), sinkB = tempPath("b.jsonl")
            let a = try db.config(consumer: "search", sinkPath: sinkA, extraSource: "  prune: true")
            let b = try db.config(consumer: "cache", sinkPath: sinkB)
            _ = try await install(a, on: db)
            _ = try await install(b, on: db)
            try await app.execute("INSERT INTO products SELECT generate_series(1, 50)")

            try await drainOnce(a)
            #expect(try readEvents(sinkA).count == 50)
            let retention = AuditLogRetention(schema: "spillway", auditTable: QualifiedName(schema: "spillway", name: "audit_log"))
            #expect(try await retention.prune(on: app) == 0, "consumer 'cache' has not read them yet")
            try await drainOnce(b)
            #expect(try readEvents(sinkB).count == 50)
            #expect(try await retention.prune(on: app) == 50)
            try await app.execute("INSERT INTO products VALUES (51)")
            try await drainOnce(a)
            try await drainOnce(b)
            #expect(try readEvents(sinkA).count == 51 && readEvents(sinkB).count == 51)
        }
    }

    @Test("status shows position, lag and the JSON form")
    func status() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (configPath, sink) = try db.writeConfig()
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try await app.execute("INSERT INTO products SELECT generate_series(1, 5)")

            let pending = try await SpillwayProcess.run(["status", "--json", "--config", configPath])
            #expect(pending.code == 0)
            let json = try JSONParser.parse(pending.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue
            #expect(json?["lag_rows"] == .number("5"))
            #expect(json?["position"] == .null)

            #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            let caughtUp = try JSONParser.parse(try await SpillwayProcess.run(["status", "--json", "--config", configPath]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)).objectValue
            #expect(caughtUp?["lag_rows"] == .number("0"))
            #expect(caughtUp?["events_total"] == .number("5"))
            let lastEvent = try readEvents(sink).last
            #expect(caughtUp?["position"] == .string(lastEvent?.position ?? "?"))
            let text = try await SpillwayProcess.run(["status", "--config", configPath])
            #expect(text.stdout.contains("lag:          0 rows"))
        }
    }

    @Test("reset: audit_log replays every retained change with the same ids; replication refuses (a slot cannot rewind)",
          arguments: SourceKind.allCases)
    func resetReplays(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (configPath, sink) = try db.writeConfig(kind: kind.rawValue)
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            try await app.execute("INSERT INTO products SELECT generate_series(1, 5)")
            #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            let first = try readEvents(sink)
            try #require(first.count == 5)

            // Refused while the consumer runs (for replication, refused whatever it does).
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await runner.waitForLog(kind.streamingLog)
            let whileRunning = try await SpillwayProcess.run(["reset", "--config", configPath])
            if kind == .replication {
                #expect(whileRunning.code == 2 && whileRunning.stderr.contains("cannot rewind"), "\(whileRunning.stderr)")
            } else {
                #expect(whileRunning.code == 1 && whileRunning.stderr.contains("is running"), "\(whileRunning.stderr)")
            }
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)

            let before = try await CheckpointRow.read(consumer: "tests", on: app)
            let reset = try await SpillwayProcess.run(["reset", "--config", configPath])
            let replayed: [ChangeEvent]
            if kind == .replication {
                // A slot cannot rewind: reset says so and changes nothing, rather than claim a replay.
                #expect(reset.code == 2, "\(reset.stdout)\(reset.stderr)")
                #expect(reset.stderr.contains("source.kind") && reset.stderr.contains("cannot rewind"), "\(reset.stderr)")
                let after = try await CheckpointRow.read(consumer: "tests", on: app)
                #expect(after.position == before.position && after.lsn == before.lsn && after.eventsTotal == before.eventsTotal)
                #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
                replayed = try readEvents(sink)
                #expect(replayed.count == 5, "nothing replayed, nothing lost")
            } else {
                #expect(reset.code == 0, "\(reset.stderr)")
                #expect(try await CheckpointRow.read(consumer: "tests", on: app).position == nil, "rewound")
                #expect(reset.stdout.contains("replays every retained change"))
                #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
                replayed = try readEvents(sink)
                #expect(replayed.count == 10, "the sink holds \(replayed.count) events")
                #expect(replayed.dropFirst(5).map(\.id) == first.map(\.id), "a replay carries the same ids")
            }

            try await app.execute("INSERT INTO products VALUES (6)")
            #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            let after = try readEvents(sink)
            #expect(after.count == replayed.count + 1, "after the replay, each new change once")
            #expect(after.last?.key == ["id": .number("6")])
            #expect(try await CheckpointRow.read(consumer: "tests", on: app).position == after.last?.position)
        }
    }
}
