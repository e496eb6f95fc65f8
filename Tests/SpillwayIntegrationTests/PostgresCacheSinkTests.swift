import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("notify and refresh sinks against a real PostgreSQL", .serialized, .enabled(if: TestEnvironment.canRun))
struct PostgresCacheSinkTests {
    @Test("NOTIFY: a LISTENing connection receives each event, and the compact form of a big row", arguments: SourceKind.allCases)
    func notifyReachesAListener(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            // FULL: the replication source then sends the old row of an update, as the audit_log source does.
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text); ALTER TABLE products REPLICA IDENTITY FULL")
            let config = try db.cacheConfig(kind: kind.rawValue, tables: ["public.products"], sinks: "  - {name: notify, kind: notify}")
            _ = try await install(config, on: db)
            let listener = try await db.connect()
            try await listener.execute("LISTEN spillway_products")

            try await app.execute("INSERT INTO products VALUES (1, 'small')")
            try await app.execute("INSERT INTO products VALUES (2, repeat('x', 9000))")
            try await app.execute("UPDATE products SET name = 'renamed' WHERE id = 1")
            try await drainOnce(config)

            var received: [PostgresConnection.Notification] = []
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while received.count < 3, clock.now < deadline {
                received += try await listener.notifications(timeout: .milliseconds(500))
            }
            try #require(received.count == 3, "got \(received)")
            received += try await listener.notifications(timeout: .milliseconds(300))
            #expect(received.count == 3, "one notification per event, none more")
            #expect(received.allSatisfy { $0.channel == "spillway_products" })
            let small = try ChangeEvent(json: JSONParser.parse(received[0].payload))
            #expect(small.op == .insert && small.after?["name"] == .string("small"))
            let big = try JSONParser.parse(received[1].payload)
            #expect(big.objectValue?.names == ["id", "op", "schema", "table", "key"])
            #expect(big.objectValue?["key"] == .object(["id": .number("2")]))
            #expect(big.objectValue?["op"] == .string("insert"))
            let update = try ChangeEvent(json: JSONParser.parse(received[2].payload))
            #expect(update.op == .update && update.before?["name"] == .string("small"))
        }
    }

    @Test("refresh: a materialized view shows new events within min_interval + 1s; two runners never refresh it at once",
          arguments: SourceKind.allCases)
    func refreshKeepsAViewFresh(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            // Each refresh of event_counts takes at least 150ms, so two runners refreshing at once would be seen.
            try await app.execute("""
                CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL);
                CREATE MATERIALIZED VIEW event_counts AS
                  WITH pause AS MATERIALIZED (SELECT pg_sleep(0.15))
                  SELECT kind, count(*) AS n FROM events, pause GROUP BY kind;
                CREATE UNIQUE INDEX ON event_counts (kind);
                CREATE MATERIALIZED VIEW event_total AS SELECT count(*) AS n FROM events;
                """)
            let sinks = """
                  - name: views
                    kind: refresh
                    min_interval: 500ms
                    views:
                      public.events: [public.event_counts, public.event_total]
                """
            let first = try db.writeConfig(consumer: "first", kind: kind.rawValue, tables: ["public.events"], sinks: sinks)
            let second = try db.writeConfig(consumer: "second", kind: kind.rawValue, tables: ["public.events"], sinks: sinks)
            for path in [first, second] {
                #expect(try await SpillwayProcess.run(["install", "--config", path]).code == 0)
            }
            let runners = [try SpillwayProcess(["run", "--config", first]), try SpillwayProcess(["run", "--config", second])]

            // Samples the refreshes running at any moment.
            let sampler = Task { () throws -> (maxConcurrent: Int, refreshes: Set<String>) in
                let probe = try await db.connect()
                var maxConcurrent = 0
                var refreshes: Set<String> = []
                while !Task.isCancelled {
                    let running = try await probe.query("""
                        SELECT pid::text || '@' || query_start::text FROM pg_stat_activity
                        WHERE datname = current_database() AND state = 'active'
                          AND query ILIKE 'REFRESH MATERIALIZED VIEW%event_counts%'
                        """)
                    maxConcurrent = max(maxConcurrent, running.rows.count)
                    refreshes.formUnion(running.rows.compactMap { $0[0] })
                    try? await Task.sleep(for: .milliseconds(20))
                }
                await probe.close()
                return (maxConcurrent, refreshes)
            }

            // Warm-up, not timed: both runners have started and delivered a batch.
            try await app.execute("INSERT INTO events (kind) VALUES ('odd')")
            try await waitUntil("both runners deliver") {
                try await app.query("SELECT count(*) FROM spillway.checkpoints WHERE events_total = 1").first?[0] == "2"
            }
            let clock = ContinuousClock()
            for count in 2...7 {
                try await app.execute("INSERT INTO events (kind) VALUES ('\(count % 2 == 0 ? "even" : "odd")')")
                let committed = clock.now
                try await waitUntil("event_counts shows \(count) events", timeout: .seconds(10)) {
                    try await app.query("SELECT coalesce(sum(n), 0) FROM event_counts").first?[0] == "\(count)"
                }
                let latency = clock.now - committed
                #expect(latency < .milliseconds(1500), "event \(count) took \(latency) to show (min_interval 500ms + 1s)")
                try await Task.sleep(for: .milliseconds(100))
            }
            try await waitUntil("event_total shows 7 events") {
                try await app.query("SELECT n FROM event_total").first?[0] == "7"
            }
            // A refresh sink acknowledges a batch once its refreshes are done: when both checkpoints count all
            // 7 events, no refresh is left to sample.
            try await waitUntil("both runners acknowledge all 7 events") {
                try await app.query("SELECT count(*) FROM spillway.checkpoints WHERE events_total = 7").first?[0] == "2"
            }
            sampler.cancel()
            let sampled = try await sampler.value
            #expect(sampled.maxConcurrent == 1, "refreshes of event_counts overlapped")
            #expect(sampled.refreshes.count >= 6, "sampled refreshes: \(sampled.refreshes.count)")
            for runner in runners {
                runner.signal(SIGTERM)
                #expect(try await runner.wait() == 0, "stderr: \(runner.stderr)")
                #expect(runner.stderr.contains("no unique index"), "a plain refresh of event_total is warned about")
            }
        }
    }

    @Test("refresh: `auto` finds the materialized views over a table, directly and through a plain view", arguments: SourceKind.allCases)
    func refreshDiscoversViews(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE events (id bigserial PRIMARY KEY, kind text);
                CREATE TABLE other (id int PRIMARY KEY);
                CREATE MATERIALIZED VIEW direct AS SELECT count(*) AS n FROM events;
                CREATE UNIQUE INDEX ON direct (n);
                CREATE VIEW recent AS SELECT * FROM events WHERE id > 0;
                CREATE MATERIALIZED VIEW through_view AS SELECT count(*) AS n FROM recent;
                CREATE UNIQUE INDEX ON through_view (n);
                CREATE MATERIALIZED VIEW unrelated AS SELECT count(*) AS n FROM other;
                """)
            let config = try db.cacheConfig(kind: kind.rawValue, tables: ["public.events", "public.other"], sinks: """
                  - {name: views, kind: refresh, min_interval: 10ms, views: {public.events: auto}}
                """)
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO events (kind) VALUES ('a'), ('b'); INSERT INTO other VALUES (1)")
            try await drainOnce(config)
            #expect(try await app.query("SELECT n FROM direct").first?[0] == "2")
            #expect(try await app.query("SELECT n FROM through_view").first?[0] == "2")
            #expect(try await app.query("SELECT n FROM unrelated").first?[0] == "0", "not built from events")
        }
    }

    @Test("refresh: a view that does not exist stops `run` at start-up with exit code 2")
    func missingViewIsAStartUpError() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE events (id bigserial PRIMARY KEY); CREATE VIEW plain AS SELECT * FROM events")
            let path = try db.writeConfig(consumer: "tests", tables: ["public.events"], sinks: """
                  - {name: views, kind: refresh, views: {public.events: [public.plain]}}
                """)
            #expect(try await SpillwayProcess.run(["install", "--config", path]).code == 0)
            let run = try await SpillwayProcess.run(["run", "--once", "--config", path])
            #expect(run.code == 2, "stderr: \(run.stderr)")
            #expect(run.stderr.contains("sinks[0].views.public.events[0]") && run.stderr.contains("public.plain is not a materialized view"))
        }
    }
}
