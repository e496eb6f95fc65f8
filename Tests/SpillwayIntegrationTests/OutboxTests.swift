import Foundation
import SpillwayCore
import SpillwayPostgres
import SpillwayTestSupport
import Testing

@Suite("source.outbox: the outbox router through both sources, to a Kafka cluster (mock) and a file sink",
       .enabled(if: TestEnvironment.canRunKafka))
struct OutboxTests {
    /// `orders` and its outbox; a config with a Kafka sink and a reference file sink (every event, in delivery
    /// order). Returns the config's and the file's paths.
    static func setUp(_ db: TestDatabase, _ app: PostgresConnection, kind: SourceKind, brokers: String,
                      outbox: String = "{table: public.outbox, route_by: aggregate_type, key: aggregate_id, payload: payload, delete_after: true}")
        async throws -> (config: String, file: String) {
        try await app.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, total int);
            CREATE TABLE outbox (id bigserial PRIMARY KEY, aggregate_type text NOT NULL, aggregate_id text NOT NULL, payload jsonb NOT NULL);
            """)
        let dir = URL(fileURLWithPath: tempPath("outbox")).deletingLastPathComponent().path
        let file = "\(dir)/reference.jsonl", path = "\(dir)/spillway.yaml"
        try """
            database:
              url: \(db.url)
            consumer: shop
            source:
              kind: \(kind.rawValue)
              tables: [public.orders]
              outbox: \(outbox)
              poll_interval: 100ms
              batch_size: 20
              slot: \(db.slotName(consumer: "shop"))
            sinks:
              - name: bus
                kind: kafka
                brokers: \(brokers)
                properties: {linger.ms: 5}
              - {name: reference, kind: file, path: \(file)}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, file)
    }

    /// One business transaction: an order and, in the same transaction, an `Order` message keyed by the order's
    /// customer and a `Customer` message keyed by the customer.
    static func placeOrder(_ id: Int, on app: PostgresConnection) async throws {
        let customer = "c-\(id % 7)"
        try await app.execute("""
            BEGIN;
            INSERT INTO orders VALUES (\(id), \(id * 10));
            INSERT INTO outbox (aggregate_type, aggregate_id, payload) VALUES
              ('Order', '\(customer)', '{"order": \(id), "total": \(id * 10), "note": "ünïcode \\"q\\""}'),
              ('Customer', '\(customer)', '{"customer": "\(customer)", "last_order": \(id)}');
            COMMIT
            """)
    }

    /// The field's shapes: a quoted, unicode-named outbox table and columns in a mixed-case schema, on a database
    /// whose TimeZone, DateStyle and bytea_output are not the defaults.
    @Test("a quoted unicode outbox table with quoted columns, non-default database settings: routed, payload exact, deleted after delivery",
          arguments: SourceKind.allCases)
    func quotedUnicodeOutbox(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("""
                ALTER DATABASE \(SQLText.identifier(db.name)) SET timezone = 'Asia/Kolkata';
                ALTER DATABASE \(SQLText.identifier(db.name)) SET datestyle = 'SQL, DMY';
                ALTER DATABASE \(SQLText.identifier(db.name)) SET bytea_output = 'escape';
                CREATE SCHEMA "Shop";
                CREATE TABLE "Shop".orders (id int PRIMARY KEY);
                CREATE TABLE "Shop"."Ëvent Outbox" ("Id" bigserial PRIMARY KEY, "Aggregate Type" text NOT NULL, "aggregateId" text NOT NULL,
                                                    "Payload" jsonb NOT NULL, at timestamptz DEFAULT '2024-03-10 01:30:00+00');
                """)
            let (path, sink) = try db.writeConfig(tables: ["'\"Shop\".orders'"], consumer: "shop", kind: kind.rawValue, extraSource: """
                  outbox: {table: '"Shop"."Ëvent Outbox"', route_by: 'Aggregate Type', key: aggregateId, payload: Payload, delete_after: true}
                """)
            let installed = try await SpillwayProcess.run(["install", "--config", path])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            let writer = try await db.connect()
            try await writer.execute("""
                BEGIN;
                INSERT INTO "Shop".orders VALUES (1);
                INSERT INTO "Shop"."Ëvent Outbox" ("Aggregate Type", "aggregateId", "Payload") VALUES
                  ('Bestellung', 'kunde-ü', '{"n": 1.50, "s": "\\u00e9 \\"q\\"", "t": "2024-03-10T01:30:00Z"}'),
                  ('Kunde', 'kunde-ü', '{"n": 2}');
                COMMIT
                """)
            let run = try await SpillwayProcess.run(["run", "--once", "--config", path])
            try #require(run.code == 0, "\(run.stderr)")
            let events = try readEvents(sink)
            let routed = events.compactMap { $0.outbox }
            #expect(routed.map(\.route) == ["Bestellung", "Kunde"], "\(events.map(\.id))")
            #expect(routed.map(\.key) == ["kunde-ü", "kunde-ü"])
            #expect(routed.first.map { JSONEncoding.string($0.payload) } == #"{"n":1.50,"s":"é \"q\"","t":"2024-03-10T01:30:00Z"}"#,
                    "the payload as stored, numbers exact")
            #expect(events.filter { $0.table == "orders" }.count == 1)
            // The delete comes with the checkpoint that covers the rows: a second pass saves it if the first did not.
            let again = try await SpillwayProcess.run(["run", "--once", "--config", path])
            try #require(again.code == 0, "\(again.stderr)")
            #expect(try await app.query(#"SELECT count(*) FROM "Shop"."Ëvent Outbox""#).first?[0] == "0", "delete_after emptied it")
            #expect(try readEvents(sink).filter { $0.outbox != nil }.count == 2, "the deletes were not delivered, nothing twice")
        }
    }

    @Test("outbox rows reach their routed topics in commit order per aggregate with key, value and header; delete_after empties the outbox, only for checkpointed rows, across a kill -9",
          arguments: SourceKind.allCases)
    func routedAcrossAKill(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let mock = try await KafkaMockProcess.start(["--brokers", "1"])
            defer { mock.stop() }
            let app = try await db.connect()
            let (path, file) = try await Self.setUp(db, app, kind: kind, brokers: mock.bootstrapServers)
            let installed = try await SpillwayProcess.run(["install", "--config", path])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            // A backlog of 4,500 events in 225 batches, so the kill lands mid-stream.
            let orders = 1500
            for id in 1...orders { try await Self.placeOrder(id, on: app) }

            var runner = try SpillwayProcess(["run", "--config", path])
            // Killed once a first checkpoint (and its deletes) is saved, while the backlog still streams.
            let clock = ContinuousClock()
            let saved = clock.now + .seconds(60)
            while try await CheckpointRow.read(consumer: "shop", on: app).eventsTotal <= 0, clock.now < saved {
                try await Task.sleep(for: .milliseconds(5))
            }
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atKill = try readEvents(file, isStillWriting: true)
            let checkpoint = try await CheckpointRow.read(consumer: "shop", on: app)
            let remaining = Int(try await app.query("SELECT count(*) FROM outbox").first?[0] ?? "") ?? -1
            #expect(checkpoint.eventsTotal < orders * 3, "killed mid-stream: \(checkpoint)")
            // Deleted exactly with the checkpoint: the rows whose events it covers are gone, every other one is there.
            let covered = firstDeliveries(atKill).prefix(checkpoint.eventsTotal).filter { $0.outbox != nil }.count
            #expect(covered > 0, "a checkpoint with messages was saved before the kill: \(checkpoint)")
            #expect(remaining == orders * 2 - covered, "outbox rows left at the kill: \(remaining), checkpointed messages: \(covered)")

            runner = try SpillwayProcess(["run", "--config", path])
            try await waitForStatus(path, timeout: .seconds(180), "every event") { $0["events_total"]?.plainText == "\(orders * 3)" }
            let deadline = clock.now + .seconds(30)
            var left = -1
            while clock.now < deadline {
                left = Int(try await app.query("SELECT count(*) FROM outbox").first?[0] ?? "") ?? -1
                if left == 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(left == 0, "delete_after emptied the outbox once everything was acknowledged")
            // More messages after the drain: still routed (the deletes that came through the source were not).
            try await Self.placeOrder(orders + 1, on: app)
            try await waitForStatus(path, "the last order") { $0["events_total"]?.plainText == "\(orders * 3 + 3)" }
            try await runner.waitForLog(kind.streamingLog)
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")

            let reference = try readEvents(file)
            try expectResumedFromCheckpoint(atKill: atKill, checkpoint: checkpoint, all: reference, isOrderFixed: kind == .replication)
            let distinct = firstDeliveries(reference)
            #expect(distinct.count == orders * 3 + 3)
            #expect(!reference.contains { $0.table == "outbox" && $0.op != .insert }, "no update or delete of the outbox was delivered")
            #expect(distinct.filter { $0.table == "outbox" }.allSatisfy { $0.outbox != nil }, "other sinks get the outbox field")
            #expect(distinct.filter { $0.table == "orders" }.allSatisfy { $0.outbox == nil })

            for (route, field) in [("Order", "order"), ("Customer", "last_order")] {
                let records = try await consumeWithKcat(topic: "shop.\(route)", bootstrap: mock.bootstrapServers)
                #expect(records.allSatisfy { $0.header("spillway-route") == route && $0.header("spillway-table") == "public.outbox" })
                // The value is the payload itself (not the change event), the key the aggregate id.
                var seen: [String: [Int]] = [:]
                var messages = Set<Int>()
                for record in records {
                    let payload = try #require(record.payload.map { try JSONParser.parse($0) }?.objectValue, "a JSON value: \(record)")
                    let order = try #require(payload[field].flatMap { Int($0.plainText) })
                    let key = try #require(record.key)
                    #expect(key == "c-\(order % 7)", "keyed by the aggregate: \(record)")
                    if route == "Order" {
                        #expect(payload["note"] == .string("ünïcode \"q\""))
                        #expect(payload["total"] == .number("\(order * 10)"))
                    }
                    if !seen[key, default: []].contains(order) { seen[key, default: []].append(order) }
                    messages.insert(order)
                }
                #expect(messages == Set(1...orders + 1), "\(route): every message, none lost")
                for (key, sequence) in seen {
                    #expect(sequence == sequence.sorted(), "\(route) \(key): first deliveries in commit order")
                }
            }
        }
    }

    @Test("a missing outbox table or column is a config error naming the key, exit 2, nothing installed", arguments: SourceKind.allCases)
    func configErrors(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            let (missingTable, _) = try await Self.setUp(db, app, kind: kind, brokers: "127.0.0.1:1", outbox: "{table: public.outbox2}")
            var result = try await SpillwayProcess.run(["install", "--config", missingTable])
            #expect(result.code == 2, "\(result.stderr)")
            #expect(result.stderr.contains("config key 'source.outbox.table': outbox table public.outbox2 does not exist"), "\(result.stderr)")

            let dir = URL(fileURLWithPath: missingTable).deletingLastPathComponent().path
            let text = try String(contentsOfFile: missingTable, encoding: .utf8)
            let badColumn = "\(dir)/column.yaml"
            try text.replacingOccurrences(of: "outbox: {table: public.outbox2}", with: "outbox: [{table: public.outbox, route_by: kind}]")
                .write(toFile: badColumn, atomically: true, encoding: .utf8)
            result = try await SpillwayProcess.run(["install", "--config", badColumn])
            #expect(result.code == 2, "\(result.stderr)")
            #expect(result.stderr.contains("config key 'source.outbox[0].route_by': outbox table public.outbox has no column 'kind'"), "\(result.stderr)")
            let check = try await SpillwayProcess.run(["check", "--config", badColumn])
            #expect(check.code != 0)
            #expect(check.stdout.contains("error  source.outbox[0].route_by: outbox table public.outbox has no column 'kind'"), "\(check.stdout)")

            let installedSchema = try await app.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'spillway'")
            #expect(installedSchema.first?[0] == "0", "nothing was installed")
            let publications = try await app.query("SELECT count(*) FROM pg_publication")
            #expect(publications.first?[0] == "0", "no publication")

            let typo = "\(dir)/typo.yaml"
            try text.replacingOccurrences(of: "outbox: {table: public.outbox2}", with: "outbox: {table: public.outbox, delete_afer: true}")
                .write(toFile: typo, atomically: true, encoding: .utf8)
            result = try await SpillwayProcess.run(["install", "--config", typo])
            #expect(result.code == 2)
            #expect(result.stderr.contains("config key 'source.outbox.delete_afer'"), "\(result.stderr)")
        }
    }
}
