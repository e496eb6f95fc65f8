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

    @Test("refresh: a view shows each change before the checkpoint passes it, without a further write; refreshes of a view are min_interval apart and never overlap, across two runners",
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
            // No timing bound here (a loaded machine stretches any): what must hold is that each change shows
            // without another write coming to push it, and that no checkpoint counts a change its view does not
            // show yet. The debounce is checked below from the refresh start times the server recorded.
            for count in 2...7 {
                try await app.execute("INSERT INTO events (kind) VALUES ('\(count % 2 == 0 ? "even" : "odd")')")
                try await waitUntil("both runners acknowledge \(count) events", timeout: .seconds(20)) {
                    try await app.query("SELECT count(*) FROM spillway.checkpoints WHERE events_total = \(count)").first?[0] == "2"
                }
                let shown = try await app.query("SELECT coalesce(sum(n), 0) FROM event_counts").first?[0]
                #expect(shown == "\(count)", "both checkpoints count \(count) events, event_counts shows \(shown ?? "nil")")
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
            // Per runner (one refresh connection, one pid), refresh starts are at least min_interval apart; the
            // 50 ms slack covers the client recording its start a round trip before the server does.
            let startsByRunner = try await refreshStarts(sampled.refreshes, on: app)
            #expect(startsByRunner.count == 2, "refreshes by \(startsByRunner.count) runners")
            for (pid, starts) in startsByRunner {
                for (earlier, later) in zip(starts, starts.dropFirst()) {
                    #expect(later - earlier >= 0.45, "runner \(pid) refreshed event_counts \(later - earlier)s after its previous refresh (min_interval 500ms)")
                }
            }
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
    /// Sampled "pid@query_start" refreshes, as each runner's refresh start times (epoch seconds, ascending).
    private func refreshStarts(_ sampled: Set<String>, on connection: PostgresConnection) async throws -> [String: [Double]] {
        var starts: [String: [Double]] = [:]
        for entry in sampled {
            let parts = entry.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2,
                  let epoch = try await connection.query("SELECT extract(epoch FROM $1::timestamptz)::float8", [parts[1]]).first?[0],
                  let seconds = Double(epoch) else {
                Issue.record("unreadable refresh sample \(entry)")
                continue
            }
            starts[parts[0], default: []].append(seconds)
        }
        return starts.mapValues { $0.sorted() }
    }
}
