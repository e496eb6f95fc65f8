import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayKafka
import SpillwayPostgres
import SpillwayTestSupport
import Testing

/// A config file with a JSONL file sink (the reference: what was committed, in delivery order) and a Kafka
/// sink; returns the config's and the file sink's paths.
private func writeKafkaConfig(_ db: TestDatabase, tables: [String], kafka: String, fileSink: Bool = true,
                              kind: String = "audit_log", source: String = "") throws -> (config: String, file: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-kafka-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let file = dir.appendingPathComponent("reference.jsonl").path
    let kafkaLines = kafka.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
    let yaml = """
        database:
          url: \(db.url)
        consumer: search-sync
        source:
          kind: \(kind)
          tables: [\(tables.joined(separator: ", "))]
          poll_interval: 100ms
          slot: \(db.slotName(consumer: "kafka"))
        \(source.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        sinks:
          - name: bus
            kind: kafka
        \(kafkaLines)
        \(fileSink ? "  - {name: reference, kind: file, path: \(file)}" : "")
        """
    let path = dir.appendingPathComponent("spillway.yaml").path
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return (path, file)
}

/// Properties that make tests ride out a mock outage quickly: reconnect soon after the brokers return.
private let fastReconnect = "properties: {reconnect.backoff.ms: 50, reconnect.backoff.max.ms: 300, linger.ms: 5}"

/// The event ids in `records`, per key, in offset order.
private func idsByKey(_ records: [KafkaRecord]) -> [String: [String]] {
    Dictionary(grouping: records.filter { $0.payload != nil }, by: { $0.key ?? "null" })
        .mapValues { $0.sorted { $0.offset < $1.offset }.compactMap { $0.header("spillway-id") } }
}

/// `ids` with every repeat of an id already seen dropped: what a consumer that de-duplicates by id applies.
/// `spillway run` streaming `public.products (id, n)` to a 3-broker mock (topic with 3 partitions) and a
/// reference file sink, with the first 50 inserts acknowledged: where the outage tests start.
private struct OutageStream {
    let mock: KafkaMockProcess
    let db: TestDatabase
    let app: PostgresConnection
    let path: String
    let file: String
    let runner: SpillwayProcess
    /// Status once the first 50 changes were acknowledged.
    let before: JSONObject
    /// Their ids.
    let acknowledged: Set<String>

    /// Called inside a `TestScope`, which stops the mock, kills the runner and drops the database.
    /// `databaseSettings`: `name = value` pairs set on the test database before the runner connects.
    static func start(kind: String, source: String = "", databaseSettings: [String] = []) async throws -> OutageStream {
        let mock = try await KafkaMockProcess.start(["--brokers", "3", "--topic", "search-sync.public.products:3"])
        let db = try await TestDatabase.create()
        TestScope.current?.onExit { await db.drop() }
        let app = try await db.connect()
        for setting in databaseSettings { try await app.execute("ALTER DATABASE \(SQLText.identifier(db.name)) SET \(setting)") }
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, n int)")
        let (path, file) = try writeKafkaConfig(db, tables: ["public.products"], kafka: """
            brokers: \(mock.bootstrapServers)
            timeout: 1s
            \(fastReconnect)
            """, kind: kind, source: source)
        #expect(try await SpillwayProcess.run(["install", "--config", path]).code == 0)
        let runner = try SpillwayProcess(["run", "--config", path])
        for batch in 0..<5 {
            try await app.execute("INSERT INTO products SELECT g, 0 FROM generate_series(\(batch * 10 + 1), \(batch * 10 + 10)) g")
        }
        // lag_rows is the audit_log source's backlog (always 0 for replication); events_total counts what was checkpointed.
        let before = try await waitForStatus(path, "the first 50 changes to be acknowledged") {
            $0.lagRows == 0 && $0["events_total"]?.plainText == "50"
        }
        let acknowledged = Set(try readEvents(file).map(\.id))
        #expect(acknowledged.count == 50)
        return OutageStream(mock: mock, db: db, app: app, path: path, file: file, runner: runner, before: before, acknowledged: acknowledged)
    }
}

private func firstOccurrences(_ ids: [String]) -> [String] {
    var seen = Set<String>()
    return ids.filter { seen.insert($0).inserted }
}

@Suite("Kafka sink: both sources → mock Kafka cluster over TCP, read back with kcat", .serialized, .enabled(if: TestEnvironment.canRunKafka))
struct KafkaSinkIntegrationTests {
    @Test("changes land on {prefix}.{schema}.{table} and override topics, keyed by primary key, in commit order, with headers and tombstones",
          arguments: SourceKind.allCases)
    func topicsKeysOrderHeadersTombstones(kind: SourceKind) async throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try await withTestDatabase { db in
            let app = try await db.connect()
            let early = try await db.connect()
            let late = try await db.connect()
            try await app.execute("""
                CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
                CREATE TABLE orders (id int, line int, qty int, org text, PRIMARY KEY (id, line));
                CREATE TABLE notes (body text)
                """)
            let (path, file) = try writeKafkaConfig(db, tables: ["public.products", "public.orders", "public.notes"], kafka: """
                brokers: \(cluster.bootstrapServers)
                prefix: neon
                topics: {public.orders: orders-topic}
                tombstones: true
                \(fastReconnect)
                """, kind: kind.rawValue, source: kind == .replication ? "tenant_columns: {public.orders: org}" : "")
            let config = try ConfigLoader.load(path: path)
            _ = try await install(config, on: db)

            try await app.execute("INSERT INTO products SELECT g, 'p' || g, g * 1.5 FROM generate_series(1, 20) g")
            try await app.execute("BEGIN; SET LOCAL app.current_org_id = 'acme'; INSERT INTO orders VALUES (1, 1, 3, 'acme'), (1, 2, 4, 'acme'); COMMIT")
            try await app.execute("INSERT INTO notes VALUES ('no primary key')")
            // `late` takes the lower transaction id, `early` commits its change of row 1 first: per-key order
            // must be commit order, not txid order.
            try await late.execute("BEGIN; UPDATE products SET name = 'late' WHERE id = 2")
            try await early.execute("BEGIN; UPDATE products SET name = 'early' WHERE id = 1; COMMIT")
            try await late.execute("UPDATE products SET name = 'late' WHERE id = 1; COMMIT")
            for round in 1...3 {
                try await app.execute("UPDATE products SET price = price + \(round) WHERE id % 4 = \(round)")
            }
            try await app.execute("DELETE FROM products WHERE id IN (3, 7)")
            try await app.execute("BEGIN; SET LOCAL app.current_org_id = 'acme'; UPDATE orders SET qty = 9 WHERE id = 1 AND line = 2; COMMIT")
            try await drainOnce(config)

            let reference = try readEvents(file)
            let products = try await consumeWithKcat(topic: "neon.public.products", bootstrap: cluster.bootstrapServers)
            let orders = try await consumeWithKcat(topic: "orders-topic", bootstrap: cluster.bootstrapServers)
            let notes = try await consumeWithKcat(topic: "neon.public.notes", bootstrap: cluster.bootstrapServers)

            // Every change exactly once (one pass, no failure), on its table's topic.
            let productEvents = reference.filter { $0.table == "products" }
            #expect(products.filter { $0.payload != nil }.count == productEvents.count)
            #expect(Set(products.compactMap { $0.header("spillway-id") }) == Set(productEvents.map(\.id)))
            #expect(orders.count == 3 && orders.allSatisfy { $0.header("spillway-table") == "public.orders" })
            #expect(notes.count == 1 && notes.first?.key == nil, "a table without primary key gets a null key")

            // Keys are the primary key as compact JSON; a key's records share a partition and come in commit
            // order (the file sink's order), which here differs from txid order for row 1.
            #expect(orders.compactMap(\.key).sorted() == [#"{"id":1,"line":1}"#, #"{"id":1,"line":2}"#, #"{"id":1,"line":2}"#])
            for (key, keyed) in Dictionary(grouping: products, by: { $0.key ?? "null" }) {
                #expect(Set(keyed.map(\.partition)).count == 1, "\(key) on one partition")
            }
            let byKey = idsByKey(products)
            for event in productEvents {
                let key = JSONEncoding.string(.object(try #require(event.key)))
                #expect(byKey[key] == productEvents.filter { $0.key == event.key }.map(\.id), "order of \(key)")
            }
            let row1 = products.filter { $0.key == #"{"id":1}"# }.compactMap(\.event)
            try #require(row1.count == 4)
            #expect(row1.map { $0.after?["name"]?.plainText } == ["p1", "early", "late", "late"])
            let (earlyTxid, lateTxid) = (try #require(row1[1].txid), try #require(row1[2].txid))
            #expect(earlyTxid > lateTxid, "the later commit has the lower txid")

            // Headers, and the value is the event JSON itself.
            let firstEvent = try #require(productEvents.first)
            let first = try #require(products.first { $0.header("spillway-id") == firstEvent.id })
            #expect(first.payload == firstEvent.jsonString)
            #expect(first.header("spillway-op") == "insert")
            #expect(first.header("spillway-table") == "public.products")
            #expect(first.header("spillway-txid") == firstEvent.txid.map(String.init))
            #expect(first.header("spillway-tenant") == nil)
            // The tenant: audit_log from app.current_org_id, replication from the configured column.
            #expect(orders.map { $0.header("spillway-tenant") } == ["acme", "acme", "acme"], "\(orders.map(\.headers))")

            // A delete is followed, on its key, by a tombstone.
            for id in [3, 7] {
                let keyed = products.filter { $0.key == #"{"id":\#(id)}"# }.sorted { $0.offset < $1.offset }
                #expect(keyed.suffix(2).map { $0.header("spillway-op") } == ["delete", "delete"])
                #expect(keyed.last?.payload == nil, "tombstone last for id \(id)")
                #expect(keyed.dropLast().allSatisfy { $0.payload != nil })
            }
        }
    }

    @Test("replication source → Kafka: every change once, keyed by primary key, one partition per key, commit order per key")
    func replicationSourceToKafka() async throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try await withTestDatabase { db in
            let app = try await db.connect()
            let early = try await db.connect()
            let late = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2))")
            let (path, file) = try writeKafkaConfig(db, tables: ["public.products"], kafka: """
                brokers: \(cluster.bootstrapServers)
                prefix: wal
                \(fastReconnect)
                """, kind: "replication")
            let config = try ConfigLoader.load(path: path)
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO products SELECT g, 'p' || g, g FROM generate_series(1, 30) g")
            try await late.execute("BEGIN; UPDATE products SET name = 'late' WHERE id = 2")
            try await early.execute("BEGIN; UPDATE products SET name = 'early' WHERE id = 1; COMMIT")
            try await late.execute("UPDATE products SET name = 'late' WHERE id = 1; COMMIT")
            try await app.execute("UPDATE products SET price = price * 2 WHERE id % 3 = 0; DELETE FROM products WHERE id = 5")
            try await drainOnce(config)

            let reference = try readEvents(file)
            let records = try await consumeWithKcat(topic: "wal.public.products", bootstrap: cluster.bootstrapServers)
            let expectedChanges = 44  // 30 inserts, 3 updates of names, 10 price updates, 1 delete
            #expect(reference.count == expectedChanges)
            #expect(records.count == reference.count)
            #expect(Set(records.compactMap { $0.header("spillway-id") }) == Set(reference.map(\.id)))
            for (key, keyed) in Dictionary(grouping: records, by: { $0.key ?? "null" }) {
                #expect(Set(keyed.map(\.partition)).count == 1, "\(key) on one partition")
            }
            let byKey = idsByKey(records)
            for event in reference {
                let key = JSONEncoding.string(.object(try #require(event.key)))
                #expect(byKey[key] == reference.filter { $0.key == event.key }.map(\.id), "order of \(key)")
            }
            let row1 = records.filter { $0.key == #"{"id":1}"# }.compactMap(\.event)
            #expect(row1.map { $0.after?["name"]?.plainText } == ["p1", "early", "late"])
        }
    }

    @Test("a full broker outage while `spillway run` streams: the checkpoint holds, the stall is reported, then every change arrives exactly once, in key order")
    func brokerOutageHoldsTheCheckpoint() async throws {
        try await withTestScope { _ in
            let stream = try await OutageStream.start(kind: "audit_log")
            let (mock, app, path, file, runner, before, acknowledged) = (
                stream.mock, stream.app, stream.path, stream.file, stream.runner, stream.before, stream.acknowledged)

            #expect(try await mock.command("down-all") == "ok")
            for batch in 5..<10 {
                try await app.execute("INSERT INTO products SELECT g, 0 FROM generate_series(\(batch * 10 + 1), \(batch * 10 + 10)) g")
            }
            try await app.execute("UPDATE products SET n = n + 1 WHERE id % 10 = 0")
            let during = try await waitForStatus(path, timeout: .seconds(10), "the outage to show as an error") { $0.lastError != nil }
            try await Task.sleep(for: .seconds(1))
            let stillDown = try await statusJSON(path)
            #expect(during.lagRows > 0 && stillDown.lagRows > 0, "changes wait while no broker acknowledges")
            #expect(stillDown.position == before.position, "the checkpoint did not move past unacknowledged changes")
            #expect(stillDown.lastError?.contains("sink 'bus'") == true)
            #expect(stillDown.lastError?.contains(mock.bootstrapServers.split(separator: ",").first ?? "?") == true, "\(stillDown.lastError ?? "")")
            #expect(runner.process.isRunning)
            // No record fails, yet the outage shows where alerts and probes look: each stall is a failed, retried
            // attempt of the sink, and the sink is not ready.
            let scrape = try await Scrape.take(port: try await runner.httpPort())
            #expect(scrape.sum("spillway_sink_failed_total", ["sink": "bus"]) >= 1, "a stall counts as a failed attempt")
            #expect(scrape.sum("spillway_sink_retried_total", ["sink": "bus"]) >= 1)
            #expect(scrape.readyz.status == 503 && scrape.readyz.body.contains("bus"), "\(scrape.readyz.body)")

            #expect(try await mock.command("up-all") == "ok")
            try await waitForStatus(path, "the backlog to drain after the brokers returned") { $0.lagRows == 0 && $0["events_total"]?.plainText == "110" }
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")

            // An outage fails nothing (a Kafka record is never given up: issue #15's reordering): it only stalls
            // the acknowledgements, which `status` and the log report. So no session starts over, and every sink
            // gets every change exactly once.
            #expect(runner.stderr.contains("Kafka delivery stalled"), "the log says what it waits for")
            #expect(!runner.stderr.contains("resuming from the last checkpoint"), "no delivery failed")
            let delivered = try readEvents(file)
            #expect(delivered.count == 110 && Set(delivered.map(\.id)).count == 110, "the file sink got each change once")
            let records = try await consumeWithKcat(topic: "search-sync.public.products", bootstrap: mock.bootstrapServers)
            let ids = records.compactMap { $0.header("spillway-id") }
            #expect(ids.count == 110 && Set(ids) == Set(delivered.map(\.id)), "every committed change is on the topic, once")
            #expect(Set(ids).isSuperset(of: acknowledged))
            for (key, keyed) in idsByKey(records) {
                let committed = delivered.filter { $0.key.map { JSONEncoding.string(.object($0)) } == key }.map(\.id)
                #expect(keyed == committed, "per-key order of \(key)")
            }
        }
    }

    @Test("replication → Kafka with several batches in flight through a broker outage: the checkpoint holds, no batch fails, nothing is lost or repeated, each key keeps commit order; the replication connection outlives wal_sender_timeout with the window full")
    func replicationOutageWithBatchesInFlight() async throws {
        try await withTestScope { _ in
            // Small batches and a wide window: the outage catches many batches between submission and acknowledgement.
            // The 600 changes overfill the window (56 events), so the reader stops reading while the outage lasts,
            // several times wal_sender_timeout: the server must still hear from the consumer.
            let stream = try await OutageStream.start(kind: "replication", source: "batch_size: 7\nmax_in_flight_batches: 8",
                                                      databaseSettings: ["wal_sender_timeout = '2s'"])
            let (mock, app, path, file, runner, before, acknowledged) = (
                stream.mock, stream.app, stream.path, stream.file, stream.runner, stream.before, stream.acknowledged)

            #expect(try await mock.command("down-all") == "ok")
            try await app.execute("INSERT INTO products SELECT g, 0 FROM generate_series(51, 100) g")
            for _ in 0..<5 { try await app.execute("UPDATE products SET n = n + 1") }
            _ = try await waitForStatus(path, timeout: .seconds(10), "the outage to show as an error") { $0.lastError != nil }
            try await Task.sleep(for: .seconds(1))
            let stillDown = try await statusJSON(path)
            #expect(stillDown.position == before.position, "the checkpoint did not move past unacknowledged changes")
            #expect(stillDown["events_total"]?.plainText == "50")
            #expect(stillDown.lastError?.contains("sink 'bus'") == true, "\(stillDown.lastError ?? "")")
            #expect(runner.process.isRunning)
            let walSender = try await stream.app.query("SELECT active_pid FROM pg_replication_slots WHERE database = current_database()").first?[0]
            try await Task.sleep(for: .seconds(6))  // three times wal_sender_timeout with the window full
            let walSenderLater = try await stream.app.query("SELECT active_pid FROM pg_replication_slots WHERE database = current_database()").first?[0]
            #expect(walSender != nil && walSenderLater == walSender, "the same walsender serves the slot: the server did not time the consumer out")

            #expect(try await mock.command("up-all") == "ok")
            try await waitForStatus(path, timeout: .seconds(60), "the backlog to drain after the brokers returned") {
                $0["events_total"]?.plainText == "600"
            }
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")
            #expect(!runner.stderr.contains("source failed, reconnecting"), "\(runner.stderr.suffix(3000))")
            #expect(runner.stderr.contains("Kafka delivery stalled"), "the log says what it waits for")
            #expect(!runner.stderr.contains("resuming from the last checkpoint"), "no delivery failed: the batches in flight only waited")
            #expect(runner.stderr.contains("delivery latency") && runner.stderr.contains("commit_to_ack=p50 "),
                    "the run's commit-to-acknowledgement latency is logged when it stops")

            let delivered = try readEvents(file)
            let reference = delivered.map(\.id)
            let events = Dictionary(delivered.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let records = try await consumeWithKcat(topic: "search-sync.public.products", bootstrap: mock.bootstrapServers)
            let ids = records.compactMap { $0.header("spillway-id") }
            #expect(reference.count == 600 && Set(reference).count == 600, "the file sink got each change once")
            #expect(ids.count == 600 && Set(ids) == Set(reference), "every committed change is on the topic, once")
            #expect(Set(ids).isSuperset(of: acknowledged))
            for (key, keyed) in idsByKey(records) {
                let committed = reference.filter { events[$0]?.key.map { JSONEncoding.string(.object($0)) } == key }
                #expect(committed.count == 6, "\(key): its insert and five updates")
                #expect(firstOccurrences(keyed) == committed, "per-key order of \(key)")
                #expect(keyed.last == committed.last, "the last record of \(key) is its last change")
            }
            #expect(idsByKey(records).count == 100)
        }
    }

    @Test("kill -9 right after a first delivery, and again with records in flight to a cluster that is down: each restart resumes at the checkpoint, nothing is lost",
          arguments: SourceKind.allCases)
    func killDashNineWithMessagesInFlight(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let mock = try await KafkaMockProcess.start(["--brokers", "1"])
            defer { mock.stop() }
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, n int)")
            let (path, file) = try writeKafkaConfig(db, tables: ["public.products"], kafka: """
                brokers: \(mock.bootstrapServers)
                timeout: 30s
                \(fastReconnect)
                """, kind: kind.rawValue, source: "batch_size: 20")
            let installed = try await SpillwayProcess.run(["install", "--config", path])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            func insert(_ ids: ClosedRange<Int>, n: Int) async throws {
                for first in stride(from: ids.lowerBound, through: ids.upperBound, by: 20) {
                    try await app.execute("INSERT INTO products SELECT g, \(n) FROM generate_series(\(first), \(first + 19)) g")
                }
            }
            // A backlog of 250 batches: the kill comes as the first of them reaches the sinks, the brokers up. (With
            // 50, a CI run's starved test process once killed only after all of them were checkpointed.)
            let backlog = 5000
            try await insert(1...backlog, n: 0)
            var runner = try SpillwayProcess(["run", "--config", path])
            try await waitForGrowth(file, beyond: 0)
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atFirstKill = try readEvents(file, isStillWriting: true)  // killed mid-write: a torn last line was never acknowledged
            let firstCheckpoint = try await CheckpointRow.read(consumer: "search-sync", on: app)
            #expect(firstCheckpoint.eventsTotal < backlog, "killed mid-stream: \(firstCheckpoint)")

            runner = try SpillwayProcess(["run", "--config", path])
            try await waitForStatus(path, "the first \(backlog) changes") { $0["events_total"]?.plainText == "\(backlog)" }
            try expectResumedFromCheckpoint(atKill: atFirstKill, checkpoint: firstCheckpoint, all: try readEvents(file), isOrderFixed: kind == .replication)
            let topic = "search-sync.public.products"
            var countsBefore: [String: Int] = [:]
            for id in try await consumeWithKcat(topic: topic, bootstrap: mock.bootstrapServers).compactMap({ $0.header("spillway-id") }) {
                countsBefore[id, default: 0] += 1
            }
            let acknowledgedFirst = Set(atFirstKill.prefix(firstCheckpoint.eventsTotal).map(\.id))
            #expect(acknowledgedFirst.allSatisfy { countsBefore[$0] == 1 }, "acknowledged before the kill: never sent again")

            // With every broker down, the next changes are handed to librdkafka and to the file sink (which
            // acknowledges them) but are not acknowledged by Kafka when the runner is killed.
            let beforeOutage = fileSize(file)
            #expect(try await mock.command("down-all") == "ok")
            try await insert(backlog + 1...backlog + 100, n: 1)
            try await waitForGrowth(file, beyond: beforeOutage)
            try await Task.sleep(for: .milliseconds(200))  // no ordering rests on this: it gives a wrongly moving checkpoint time to move
            let held = try await CheckpointRow.read(consumer: "search-sync", on: app)
            #expect(held.eventsTotal == backlog, "nothing acknowledged while the brokers are down: \(held)")
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let atSecondKill = try readEvents(file, isStillWriting: true)
            #expect(try await mock.command("up-all") == "ok")

            runner = try SpillwayProcess(["run", "--config", path])
            try await waitForStatus(path, "the restarted runner to deliver the rest") { $0["events_total"]?.plainText == "\(backlog + 100)" }
            try await runner.waitForLog(kind.streamingLog)
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")

            let reference = try readEvents(file)
            try expectResumedFromCheckpoint(atKill: atSecondKill, checkpoint: held, all: reference, isOrderFixed: kind == .replication)
            #expect(atSecondKill.count > backlog + (atFirstKill.count - firstCheckpoint.eventsTotal), "the file sink had some of the held changes")
            let records = try await consumeWithKcat(topic: topic, bootstrap: mock.bootstrapServers)
            #expect(Set(records.compactMap(\.key)) == Set((1...backlog + 100).map { #"{"id":\#($0)}"# }), "every row's insert is on the topic")
            var counts: [String: Int] = [:]
            for id in records.compactMap({ $0.header("spillway-id") }) { counts[id, default: 0] += 1 }
            #expect(countsBefore.allSatisfy { counts[$0.key] == $0.value }, "changes acknowledged before the outage are not sent again")
            #expect(Set(counts.keys) == Set(firstDeliveries(reference).map(\.id)))
        }
    }

    @Test("bad Kafka config: unknown property and bad topic template exit 2 naming the key; an unreachable cluster is retried and shown in status")
    func badConfig() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")

            let (unknown, _) = try writeKafkaConfig(db, tables: ["public.products"], kafka: """
                brokers: 127.0.0.1:1
                properties: {linger.ms: 5, no.such.property: x}
                """)
            for command in ["install", "run"] {
                let result = try await SpillwayProcess.run([command, "--config", unknown])
                #expect(result.code == 2, "\(command): \(result.stderr)")
                #expect(result.stderr.contains("spillway: config key 'sinks[0].properties.no.such.property'"), "\(command): \(result.stderr)")
                #expect(result.stderr.contains("No such configuration property"))
            }

            let (template, _) = try writeKafkaConfig(db, tables: ["public.products"], kafka: """
                brokers: 127.0.0.1:1
                topic: "{prefix}.{tabel}"
                """)
            for command in ["install", "run"] {
                let result = try await SpillwayProcess.run([command, "--config", template])
                #expect(result.code == 2)
                #expect(result.stderr.contains("spillway: config key 'sinks[0].topic': '{prefix}.{tabel}' uses an unknown placeholder '{tabel}' (column 10)"),
                        "\(command): \(result.stderr)")
            }
            let schema = try await app.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'spillway'")
            #expect(schema.first?[0] == "0", "nothing was installed")

            let (unreachable, _) = try writeKafkaConfig(db, tables: ["public.products"], kafka: """
                brokers: 127.0.0.1:1
                timeout: 1s
                properties: {security.protocol: SASL_PLAINTEXT, sasl.mechanisms: PLAIN, sasl.username: spillway, sasl.password: hunter2}
                """)
            #expect(try await SpillwayProcess.run(["install", "--config", unreachable]).code == 0)
            try await app.execute("INSERT INTO products VALUES (1)")
            let runner = try SpillwayProcess(["run", "--config", unreachable])
            let status = try await waitForStatus(unreachable, timeout: .seconds(15), "the broker error in status") { $0.lastError != nil }
            #expect(status.lastError?.contains("127.0.0.1:1") == true, "\(status.lastError ?? "")")
            #expect(status.lastError?.contains("sink 'bus'") == true)
            #expect(status.lagRows == 1)
            try await Task.sleep(for: .seconds(1))
            #expect(runner.process.isRunning, "run keeps retrying")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
            #expect(!runner.stderr.contains("hunter2") && status.lastError?.contains("hunter2") == false, "secrets are never logged")
        }
    }
}
