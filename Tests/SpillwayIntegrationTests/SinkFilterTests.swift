import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("per-sink filters: where, ops, table globs", .enabled(if: TestEnvironment.canRun))
struct SinkFilterTests {
    /// A config for `db` with the given source tables and sinks (YAML list items, indented by two).
    static func yaml(_ db: TestDatabase, kind: SourceKind, consumer: String, tables: [String], extraSource: String = "",
                     sinks: String) -> String {
        """
        database:
          url: \(db.url)
        consumer: \(consumer)
        source:
          kind: \(kind.rawValue)
          tables: [\(tables.joined(separator: ", "))]
          poll_interval: 100ms
          slot: \(db.slotName(consumer: consumer))
        \(extraSource)
        sinks:
        \(sinks)
        """
    }

    /// `op table id` of each event, in sink order.
    static func summary(_ path: String) throws -> [String] {
        try readEvents(path).map { "\($0.op.rawValue) \($0.table) \($0.key?["id"]?.plainText ?? "-")" }
    }

    @Test("where, ops and a table glob hold per sink while another sink gets everything; a second run redelivers nothing",
          arguments: SourceKind.allCases)
    func filtersHoldPerSink(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            // REPLICA IDENTITY FULL: replication's `before` then holds the whole row, as audit_log's does.
            try await app.execute("""
                CREATE TABLE products (id int PRIMARY KEY, status text, price numeric(22,2));
                ALTER TABLE products REPLICA IDENTITY FULL;
                CREATE TABLE order_items (id int PRIMARY KEY, qty int);
                """)
            let dir = URL(fileURLWithPath: tempPath("sinks")).deletingLastPathComponent().path
            func sink(_ name: String) -> String { "\(dir)/\(name).jsonl" }
            let config = try SpillwayConfig.parse(yaml: Self.yaml(db, kind: kind, consumer: "filters",
                                                                  tables: ["public.products", "public.order_items"], sinks: """
                  - {name: all, kind: file, path: \(sink("all"))}
                  - {name: published, kind: file, path: \(sink("published")),
                     where: "after.status == 'published' || before.status == 'published'"}
                  - {name: deletes, kind: file, path: \(sink("deletes")), tables: ['public.order_*'], ops: [delete]}
                  - {name: pricey, kind: file, path: \(sink("pricey")), where: "after.price > 12345678901234567890.40"}
                """))
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO products VALUES (1, 'draft', 10), (2, 'published', 12345678901234567890.41), (3, 'published', 12345678901234567890.39)")
            try await app.execute("UPDATE products SET status = 'published' WHERE id = 1")
            try await app.execute("UPDATE products SET status = 'draft' WHERE id = 2")
            try await app.execute("DELETE FROM products WHERE id = 3")
            try await app.execute("INSERT INTO order_items VALUES (1, 1), (2, 2)")
            try await app.execute("DELETE FROM order_items WHERE id = 1")
            try await app.execute("UPDATE order_items SET qty = 5 WHERE id = 2")
            try await app.execute("DELETE FROM products WHERE id = 1")
            try await drainOnce(config)

            let everything = [
                "insert products 1", "insert products 2", "insert products 3", "update products 1", "update products 2",
                "delete products 3", "insert order_items 1", "insert order_items 2", "delete order_items 1",
                "update order_items 2", "delete products 1",
            ]
            #expect(try Self.summary(sink("all")) == everything)
            #expect(try Self.summary(sink("published")) == [
                "insert products 2", "insert products 3", "update products 1", "update products 2", "delete products 3",
                "delete products 1",
            ])
            #expect(try Self.summary(sink("deletes")) == ["delete order_items 1"])
            // Exact numeric: .41 passes, .39 does not; the update of row 2 keeps .41.
            #expect(try Self.summary(sink("pricey")) == ["insert products 2", "update products 2"])

            // Every change was acknowledged for every sink, taken or filtered out: nothing comes again.
            try await drainOnce(config)
            #expect(try Self.summary(sink("all")) == everything)
            #expect(try Self.summary(sink("deletes")) == ["delete order_items 1"])
            #expect(try Self.summary(sink("pricey")) == ["insert products 2", "update products 2"])
        }
    }

    @Test("a captured table whose every change is filtered out holds neither the checkpoint nor WAL", arguments: SourceKind.allCases)
    func filteredTableDoesNotHoldTheCheckpoint(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY); CREATE TABLE noise (id serial PRIMARY KEY, payload text)")
            let dir = URL(fileURLWithPath: tempPath("sinks")).deletingLastPathComponent().path
            let configPath = "\(dir)/filtered.yaml", productsSink = "\(dir)/products.jsonl", quietSink = "\(dir)/quiet.jsonl"
            try Self.yaml(db, kind: kind, consumer: "filtered", tables: ["public.products", "public.noise"],
                          extraSource: kind == .replication ? "  heartbeat: 500ms" : "", sinks: """
                  - {name: products, kind: file, path: \(productsSink), tables: [public.products]}
                  - {name: quiet, kind: file, path: \(quietSink), where: "table != 'noise'"}
                """).write(toFile: configPath, atomically: true, encoding: .utf8)
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await runner.waitForLog(kind.streamingLog)
            try await app.execute("INSERT INTO products VALUES (1)")
            _ = try await waitForEvents(productsSink, "the product insert") { $0.count == 1 }
            for _ in 0..<8 {
                try await app.execute("INSERT INTO noise (payload) SELECT repeat(md5(random()::text), 20) FROM generate_series(1, 5000)")
            }
            let written = try await app.query("SELECT pg_current_wal_lsn()::text").first?[0]
            switch kind {
            case .replication:
                // The slot confirms past the noise: no sink took it, and none holds it.
                var confirmedLag = Int64.max
                let clock = ContinuousClock()
                // Generous: the full suite on two shared cores once needed more than a minute for 40,000 rows.
                let deadline = clock.now + .seconds(180)
                while clock.now < deadline {
                    let lag = try await app.query(
                        "SELECT pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $2",
                        [written, db.slotName(consumer: "filtered")])
                    confirmedLag = Int64(lag.first?[0] ?? "") ?? .max
                    if confirmedLag <= 0 { break }
                    try await Task.sleep(for: .milliseconds(250))
                }
                #expect(confirmedLag <= 0, "the slot confirmed past the filtered-out changes (\(confirmedLag) bytes behind)")
            case .auditLog:
                let status = try await waitForStatus(configPath, timeout: .seconds(180), "the checkpoint past the noise") {
                    $0["lag_rows"] == .number("0")
                }
                #expect(status["lag_rows"] == .number("0"))
            }
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr)")
            #expect(try readEvents(productsSink).count == 1)
            #expect(try readEvents(quietSink).map(\.table) == ["products"])
            // Nothing filtered comes again on the next start either.
            #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(try readEvents(productsSink).count == 1)
            #expect(try readEvents(quietSink).count == 1)
        }
    }
}
