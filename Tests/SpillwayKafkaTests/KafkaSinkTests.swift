import Foundation
import Logging
import SpillwayCore
import SpillwayTestSupport
import Synchronization
import Testing

@testable import SpillwayKafka

private func settings(_ brokers: String = "127.0.0.1:1", prefix: String = "shop", tombstones: Bool = false,
                      topics: [QualifiedName: EventTemplate] = [:], properties: [String: String] = [:],
                      timeout: Duration = .seconds(30)) -> KafkaSinkSettings {
    KafkaSinkSettings(brokers: brokers.split(separator: ",").map(String.init), prefix: prefix, topics: topics,
                      tombstones: tombstones, properties: properties, timeout: timeout)
}

private func change(_ id: String, _ op: ChangeEvent.Operation, key: JSONObject?, table: String = "products",
                    tenant: String? = nil, txid: UInt64? = 727) -> ChangeEvent {
    let row: JSONObject = ["id": key?["id"] ?? .null, "name": .string("Kettle")]
    return ChangeEvent(id: id, op: op, schema: "public", table: table, key: key,
                       before: op == .insert ? nil : row, after: op == .delete ? nil : row,
                       txid: txid, commitTime: "2026-11-25T23:13:28.834489Z", position: id.replacingOccurrences(of: "-", with: "/"),
                       tenant: tenant)
}

private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

private let quiet: Logger = {
    var logger = Logger(label: "spillway.kafka.test")
    logger.logLevel = .critical
    return logger
}()

@Suite("Kafka sink records: topics, keys, values, headers, tombstones (no servers)")
struct KafkaSinkRecordTests {
    @Test func oneRecordPerEventKeyedByThePrimaryKey() throws {
        let events = [
            change("727-1", .insert, key: ["id": .number("1")], tenant: "acme"),
            change("727-2", .update, key: ["id": .number("1")], txid: nil),
        ]
        let records = try KafkaSink.records(for: events, settings: settings())
        #expect(records.eventIndices == [0, 1])
        try #require(records.messages.count == 2)
        let first = records.messages[0]
        #expect(first.topic == "shop.public.products")
        #expect(text(first.key) == #"{"id":1}"#)
        #expect(first.value == events[0].jsonBytes)
        #expect(first.headers.map(\.name) == ["spillway-id", "spillway-op", "spillway-table", "spillway-txid", "spillway-tenant"])
        #expect(first.headers.map { text($0.value) } == ["727-1", "insert", "public.products", "727", "acme"])
        // No txid, no tenant: those headers are left out rather than sent empty.
        #expect(records.messages[1].headers.map(\.name) == ["spillway-id", "spillway-op", "spillway-table"])
    }

    @Test func compositeKeysKeepColumnOrderAndATableWithoutKeyHasNone() throws {
        let composite = change("1-1", .insert, key: ["tenant_id": .number("9"), "sku": .string("A-1")])
        let keyless = change("1-2", .insert, key: nil)
        let records = try KafkaSink.records(for: [composite, keyless], settings: settings())
        try #require(records.messages.count == 2)
        #expect(text(records.messages[0].key) == #"{"tenant_id":9,"sku":"A-1"}"#)
        #expect(records.messages[1].key == nil)
    }

    @Test func tombstonesFollowDeletesOfKeyedRowsOnlyWhenEnabled() throws {
        let events = [
            change("5-1", .delete, key: ["id": .number("3")]),
            change("5-2", .delete, key: nil),
            change("5-3", .truncate, key: nil),
            change("5-4", .insert, key: ["id": .number("4")]),
        ]
        let off = try KafkaSink.records(for: events, settings: settings())
        #expect(off.messages.count == 4)
        #expect(off.messages.allSatisfy { $0.value != nil })

        let on = try KafkaSink.records(for: events, settings: settings(tombstones: true))
        #expect(on.eventIndices == [0, 0, 1, 2, 3])
        try #require(on.messages.count == 5)
        #expect(on.messages[0].value == events[0].jsonBytes)
        #expect(on.messages[1].value == nil && on.messages[1].key == on.messages[0].key && on.messages[1].topic == on.messages[0].topic)
        #expect(on.messages[1].headers == on.messages[0].headers)
    }

    @Test func overridesAndTemplatesChooseTheTopic() throws {
        let products = QualifiedName(schema: "public", name: "products")
        let s = settings(topics: [products: try EventTemplate(parsing: "{prefix}-catalog.{op}")])
        let records = try KafkaSink.records(for: [change("1-1", .delete, key: ["id": .number("1")]),
                                                  change("1-2", .insert, key: ["id": .number("1")], table: "orders")], settings: s)
        #expect(records.messages.map(\.topic) == ["shop-catalog.delete", "shop.public.orders"])
    }

    @Test("a topic template that reads the row sends each row of one batch to its own topic")
    func rowValuesInTheTopicAreRenderedPerEvent() throws {
        let products = QualifiedName(schema: "public", name: "products")
        let s = settings(topics: [products: try EventTemplate(parsing: "{prefix}.products.{after.name}"),
                                  QualifiedName(schema: "public", name: "orders"): try EventTemplate(parsing: "{prefix}.orders.{id}")])
        func named(_ id: String, _ name: String, table: String = "products") -> ChangeEvent {
            var event = change(id, .insert, key: ["id": .number("1")], table: table)
            event.after = ["id": .number("1"), "name": .string(name)]
            return event
        }
        let events = [named("1-1", "kettle"), named("1-2", "teapot"), named("1-3", "kettle"),
                      named("1-4", "x", table: "orders"), named("1-5", "x", table: "orders")]
        let records = try KafkaSink.records(for: events, settings: s)
        #expect(records.messages.map(\.topic) == ["shop.products.kettle", "shop.products.teapot", "shop.products.kettle",
                                                  "shop.orders.1-4", "shop.orders.1-5"])
    }

    @Test func aTopicKafkaWouldRefuseNamesTheEvent() {
        let long = String(repeating: "t", count: 240)
        let error = #expect(throws: KafkaSinkError.self) {
            try KafkaSink.records(for: [change("9-4", .insert, key: nil, table: long)], settings: settings())
        }
        #expect(error?.code == .invalidTopic)
        #expect(error?.description.contains("event 9-4") == true)
        #expect(error?.description.contains("at most 249") == true)
    }

    @Test func producerPropertiesComeFromTheSinksKeys() {
        let properties = KafkaSink.producerProperties(settings("a:1,b:2", properties: ["linger.ms": "20"], timeout: .milliseconds(1500)))
        #expect(properties == ["bootstrap.servers": "a:1,b:2", "message.timeout.ms": "0", "linger.ms": "20", "client.id": "spillway"],
                "records never time out: the sink's timeout only reports a stall")
    }

    @Test func validationNamesAnUnknownPropertyWithoutConnecting() {
        let error = #expect(throws: KafkaSinkError.self) { try KafkaSink.validate(settings(properties: ["linger.mss": "5"])) }
        #expect(error?.property == "linger.mss")
        #expect(error?.code == .invalidConfiguration)
        let weak = #expect(throws: KafkaSinkError.self) { try KafkaSink.validate(settings(properties: ["acks": "1"])) }
        #expect(weak?.property == "acks")
        #expect(throws: Never.self) { try KafkaSink.validate(settings(properties: ["linger.ms": "5", "acks": "all"])) }
        // Checks rd_kafka_new makes across properties are caught too, still without a broker.
        let conflict = #expect(throws: KafkaSinkError.self) {
            try KafkaSink.validate(settings(properties: ["max.in.flight.requests.per.connection": "50"]))
        }
        #expect(conflict?.code == .clientCreation)
        #expect(conflict?.description.contains("max.in.flight") == true)
        let missingCA = #expect(throws: KafkaSinkError.self) {
            try KafkaSink.validate(settings(properties: ["security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"]))
        }
        #expect(missingCA?.description.contains("ssl.ca.location") == true, "\(String(describing: missingCA))")
    }

    @Test func secretsStayOutOfErrors() {
        let error = #expect(throws: KafkaSinkError.self) {
            try KafkaSink.validate(settings(properties: ["sasl.mechanisms": "PLAIN", "sasl.password": "hunter2", "ssl.key.password": "x", "linger.ms": "hunter2"]))
        }
        // linger.ms is not a secret, so its bad value is shown; sasl.password's value never is.
        #expect(error?.property == "linger.ms")
        let secret = #expect(throws: KafkaSinkError.self) {
            try KafkaSink.validate(settings(properties: ["sasl.kerberos.min.time.before.relogin": "hunter2"]))
        }
        #expect(secret?.description.contains("hunter2") == false)
        #expect(secret?.debugDescription.contains("hunter2") == false)
    }
}

@Suite("Kafka sink against a mock cluster over TCP", .serialized, .timeLimit(.minutes(2)), .enabled(if: KafkaTestEnvironment.canRun))
struct KafkaSinkClusterTests {
    @Test func aBatchLandsWithKeysHeadersAndTombstonesAndKcatReadsItBack() async throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try cluster.createTopic("shop.public.products", partitions: 4)
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, tombstones: true,
                                                               properties: ["linger.ms": "5"]), logger: quiet)
        let events = (1...30).map { i in change("10-\(i)", i % 5 == 0 ? .delete : .update, key: ["id": .number("\(i % 6)")]) }
        try await sink.deliver(events)
        try await sink.close()

        let records = try await consumeWithKcat(topic: "shop.public.products", bootstrap: cluster.bootstrapServers)
        #expect(records.count == 30 + 6, "one record per event plus a tombstone per delete")
        #expect(records.filter { $0.payload == nil }.count == 6)
        for (key, keyed) in Dictionary(grouping: records, by: { $0.key ?? "" }) {
            #expect(Set(keyed.map(\.partition)).count == 1, "all records of \(key) on one partition")
            let ids = keyed.sorted { $0.offset < $1.offset }.compactMap { $0.header("spillway-id") }
            let expected = events.filter { $0.key.map { text(JSONEncoding.bytes(.object($0))) } == key }
                .flatMap { $0.op == .delete ? [$0.id, $0.id] : [$0.id] }
            #expect(ids == expected, "per-key order for \(key)")
        }
    }

    @Test("batches submitted back to back, before any is acknowledged, keep per-key order across them")
    func pipelinedBatchesKeepPerKeyOrder() async throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try cluster.createTopic("shop.public.products", partitions: 3)
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, properties: ["linger.ms": "20"]), logger: quiet)
        let batches = (0..<12).map { batch in
            (0..<50).map { i in change("\(batch)-\(i)", .update, key: ["id": .number("\(i % 7)")]) }
        }
        var acknowledgements: [SinkAcknowledgement] = []
        for batch in batches { acknowledgements.append(try await sink.submit(batch)) }
        for acknowledgement in acknowledgements { try await acknowledgement.wait() }
        try await sink.close()

        let records = try await consumeWithKcat(topic: "shop.public.products", bootstrap: cluster.bootstrapServers)
        #expect(records.count == 600)
        let events = batches.flatMap { $0 }
        for (key, keyed) in Dictionary(grouping: records, by: { $0.key ?? "" }) {
            let ids = keyed.sorted { $0.offset < $1.offset }.compactMap { $0.header("spillway-id") }
            #expect(ids == events.filter { $0.key.map { text(JSONEncoding.bytes(.object($0))) } == key }.map(\.id), "per-key order for \(key)")
        }
    }

    @Test("validation looks up each captured table's topic; a topic the cluster lacks is a warning, a name Kafka refuses a config error")
    func validationLooksUpTopics() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("shop.public.products", partitions: 1)
        let table = TableInfo(schema: "public", name: "products", columns: [], primaryKey: ["id"])
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers), logger: quiet)
        try await sink.validate(tables: [table])
        try await sink.close()

        let long = String(repeating: "x", count: 240)
        let refused = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, prefix: long), logger: quiet)
        let error = await #expect(throws: ConfigError.self) { try await refused.validate(tables: [table]) }
        #expect(error?.problem.contains("characters long") == true, "\(String(describing: error))")
        #expect(error?.fix.contains("sinks[].prefix") == true)
        try await refused.close()
    }

    @Test("the cluster's answer about a topic: known, or unreachable within the timeout")
    func prepareReportsTopicProblems() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("known", partitions: 2)
        let producer = try KafkaProducerClient(properties: ["bootstrap.servers": cluster.bootstrapServers, "log_level": "0"], logger: quiet)
        #expect(await producer.prepare(topics: ["known"], timeout: .seconds(5)).isEmpty)
        try await producer.close()

        let unreachable = try KafkaProducerClient(properties: ["bootstrap.servers": "127.0.0.1:1", "log_level": "0"], logger: quiet)
        let clock = ContinuousClock()
        let start = clock.now
        // 20 topics: one deadline for all ends after about 0.6 s, one per topic after 12 s; the bound between
        // them leaves a loaded machine room.
        let topics = (1...20).map { "t\($0)" }
        let problems = await unreachable.prepare(topics: ["a"] + topics, timeout: .milliseconds(600))
        #expect(clock.now - start < .seconds(6), "one deadline for all topics, not one per topic")
        #expect(problems.keys.sorted() == (["a"] + topics).sorted())
        #expect(problems["a"]?.description.contains("did not describe topic 'a'") == true, "\(String(describing: problems["a"]))")
        try await unreachable.close(timeout: .milliseconds(100))
    }

    @Test func aMessageTooLargeNamesTheEventAndTheSetting() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, properties: ["message.max.bytes": "2000"]),
                                 logger: quiet)
        var big = change("11-2", .insert, key: ["id": .number("2")])
        big.after = ["id": .number("2"), "blob": .string(String(repeating: "x", count: 5000))]
        let error = await #expect(throws: KafkaSinkError.self) {
            try await sink.deliver([change("11-1", .insert, key: ["id": .number("1")]), big, change("11-3", .insert, key: ["id": .number("3")])])
        }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.description.contains("event 11-2 (public.products)") == true, "\(String(describing: error))")
        #expect(error?.description.contains("message.max.bytes") == true)
        #expect(error?.description.contains("2 of 3 messages were not delivered") == true)
        try await sink.close()
    }

    @Test("after a record fails, batches submitted after it are refused until the next session resumes the sink: no later record of its key is stored before it")
    func aFailedRecordHoldsLaterBatches() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("shop.public.products", partitions: 1)
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, properties: ["message.max.bytes": "2000"]),
                                 logger: quiet)
        var big = change("2-1", .update, key: ["id": .number("1")])
        big.after = ["id": .number("1"), "blob": .string(String(repeating: "x", count: 5000))]
        let failing = try await sink.submit([change("2-0", .update, key: ["id": .number("0")]), big])
        let later = try await sink.submit([change("3-1", .update, key: ["id": .number("1")])])
        let failure = await #expect(throws: KafkaSinkError.self) { try await failing.wait() }
        #expect(failure?.code == .messageTooLarge)
        let refused = await #expect(throws: KafkaSinkError.self) { try await later.wait() }
        #expect(refused?.description.contains("a record enqueued before it failed") == true, "\(String(describing: refused))")
        let stillHeld = try await sink.submit([change("3-2", .update, key: ["id": .number("2")])])
        await #expect(throws: KafkaSinkError.self, "held until resumed") { try await stillHeld.wait() }
        sink.resume()
        try await sink.deliver([change("3-1", .update, key: ["id": .number("1")])])
        try await sink.close()

        let records = try await consumeWithKcat(topic: "shop.public.products", bootstrap: cluster.bootstrapServers)
        #expect(records.compactMap { $0.header("spillway-id") } == ["2-0", "3-1"], "3-1 only once, after the resume")
    }

    @Test("an unreachable cluster stalls the batch, never fails it: each timeout is reported naming the event, the brokers and librdkafka's reason")
    func anUnreachableClusterStallsTheBatch() async throws {
        let sink = try KafkaSink(name: "bus", settings: settings("127.0.0.1:1", timeout: .milliseconds(300)), logger: quiet)
        let reports = SharedStrings()
        let acknowledgement = try await sink.submit([change("12-1", .insert, key: ["id": .number("1")])])
        let waiting = Task {
            try await SinkFailureReport.$handler.withValue(SinkFailureReport.Handler { reports.append($0) }) {
                try await acknowledgement.wait()
            }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline, reports.all.count < 2 || !reports.all.contains(where: { $0.contains("Connection refused") }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let all = reports.all
        #expect(all.count >= 2, "\(all)")
        #expect(all.first?.contains("event 12-1 (public.products), first of a batch of 1, not acknowledged after 0.3 seconds by brokers 127.0.0.1:1") == true,
                "\(all)")
        #expect(all.dropFirst().first?.contains("after 0.6 seconds") == true, "reported again after each timeout: \(all)")
        #expect(all.contains { $0.contains("last broker error:") && $0.contains("Connection refused") }, "librdkafka's reason is kept: \(all)")
        #expect(all.allSatisfy { $0.contains("kept and retried") })
        #expect(!waiting.isCancelled)
        acknowledgement.abandon()
        let error = await #expect(throws: KafkaSinkError.self) { try await waiting.value }
        #expect(error?.description.contains("event 12-1") == true, "\(String(describing: error))")
        try await sink.close()
    }

    /// The soak's finding (issue #15): with a finite librdkafka message timeout, a batch that timed out during
    /// an outage failed while a later batch of the same keys, produced after it, was stored once the brokers were
    /// back; the redelivery from the checkpoint then left `v3, v2, v3` in the topic.
    @Test("an outage longer than the timeout fails no batch: both batches produced during it are stored, every key in order, none twice")
    func anOutageLongerThanTheTimeoutKeepsEveryKeyInOrder() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("shop.public.products", partitions: 2)
        let sink = try KafkaSink(
            name: "bus",
            settings: settings(cluster.bootstrapServers, properties: ["linger.ms": "5", "reconnect.backoff.max.ms": "200"],
                               timeout: .milliseconds(500)),
            logger: quiet)
        func version(_ number: Int) -> [ChangeEvent] {
            (0..<5).map { change("\(number)-\($0)", .update, key: ["id": .number("\($0)")]) }
        }
        try await sink.deliver(version(1))
        try cluster.setAllBrokersDown()
        let second = try await sink.submit(version(2))
        try await Task.sleep(for: .seconds(1))  // past the second batch's timeout
        let third = try await sink.submit(version(3))
        try await Task.sleep(for: .milliseconds(200))  // not yet past the third's
        try cluster.setAllBrokersUp()
        try await second.wait()
        try await third.wait()
        try await sink.close()

        let records = try await consumeWithKcat(topic: "shop.public.products", bootstrap: cluster.bootstrapServers)
        #expect(records.count == 15, "no record twice")
        let byKey = Dictionary(grouping: records, by: { $0.key ?? "" })
        #expect(byKey.count == 5)
        for (key, keyed) in byKey {
            let versions = keyed.sorted { $0.offset < $1.offset }.compactMap { $0.header("spillway-id")?.split(separator: "-").first.map(String.init) }
            #expect(versions == ["1", "2", "3"], "key \(key) in commit order")
        }
    }
}

@Suite("Kafka sink: sessions that end with batches in flight", .serialized, .timeLimit(.minutes(2)), .enabled(if: KafkaTestEnvironment.canRun))
struct KafkaSinkSessionTests {
    /// The soak's second finding (issue #15): a session ended by a source failure abandons its unacknowledged
    /// batches (librdkafka purges them), and the next session sends again from the checkpoint. librdkafka's
    /// non-blocking purge drops the partitions' queues later, on the broker threads: records the next session
    /// had queued by then went with them while its later records were stored, and the redelivery after that
    /// left `v3` before `v2`. This runs sessions the way the pipeline does, each ended at a random moment with
    /// batches in flight and followed at once by the next, and checks every key's order in the topic.
    @Test("sessions ended with batches in flight, each followed at once by one from the checkpoint, keep every key in order")
    func abandonedSessionsKeepEveryKeyInOrder() async throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try cluster.createTopic("shop.public.products", partitions: 3)
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, properties: ["linger.ms": "2"]), logger: quiet)
        let keys = 12
        let batches = (1...400).map { version in
            (0..<keys).map { key in change("\(version)-\(key)", .update, key: ["id": .number("\(key)")]) }
        }
        var checkpoint = 0
        var generator = SystemRandomNumberGenerator()
        var sessions = 0
        while checkpoint < batches.count {
            sessions += 1
            sink.resume()
            let endsEarly = sessions < 60
            let submittedBeforeTheEnd = Int.random(in: 1...12, using: &generator)
            var inFlight: [(index: Int, acknowledgement: SinkAcknowledgement)] = []
            var next = checkpoint
            while next < batches.count || !inFlight.isEmpty {
                if next < batches.count, inFlight.count < 8, !(endsEarly && next - checkpoint >= submittedBeforeTheEnd) {
                    inFlight.append((next, try await sink.submit(batches[next])))
                    next += 1
                    continue
                }
                if endsEarly, next - checkpoint >= submittedBeforeTheEnd || next == batches.count { break }
                let (index, acknowledgement) = inFlight.removeFirst()
                do {
                    try await acknowledgement.wait()
                    checkpoint = index + 1
                } catch {
                    break  // a purge of the session before reached this one: start over from the checkpoint
                }
            }
            // The session ends: what is unacknowledged is abandoned, as a cancelled pipeline does.
            for item in inFlight { item.acknowledgement.abandon() }
            for item in inFlight { try? await item.acknowledgement.wait() }
        }
        try await sink.close()

        let records = try await consumeWithKcat(topic: "shop.public.products", bootstrap: cluster.bootstrapServers)
        var outOfOrder: [String] = []
        for (key, keyed) in Dictionary(grouping: records, by: { $0.key ?? "" }) {
            var seen = Set<Int>(), highest = 0
            for version in keyed.sorted(by: { $0.offset < $1.offset }).compactMap({ $0.header("spillway-id")?.split(separator: "-").first.flatMap { Int($0) } }) {
                guard seen.insert(version).inserted else { continue }
                if version < highest { outOfOrder.append("key \(key): v\(version) first stored after v\(highest)") }
                highest = max(highest, version)
            }
            #expect(seen == Set(1...batches.count), "key \(key): every version stored")
        }
        #expect(outOfOrder.isEmpty, "\(outOfOrder.prefix(10)) (\(outOfOrder.count) in all, \(sessions) sessions)")
    }
}

/// Strings several tasks append to.
private final class SharedStrings: Sendable {
    private let items = Mutex<[String]>([])
    func append(_ item: String) { items.withLock { $0.append(item) } }
    var all: [String] { items.withLock { $0 } }
}

@Suite("the Kafka example config")
struct KafkaExampleConfigTests {
    @Test("Config/kafka.example.yaml parses and librdkafka accepts its properties")
    func exampleIsValid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Config/kafka.example.yaml")
        let config = try SpillwayConfig.parse(yaml: String(contentsOf: path, encoding: .utf8), sinkKinds: [KafkaSinkSettings.self])
        let settings = try #require(config.sinks.first?.settings as? KafkaSinkSettings, "the example's first sink is kafka")
        #expect(settings.prefix == "neon")
        try KafkaSink.validate(settings)
    }
}

@Suite("Kafka sink: a fatal producer error", .serialized, .timeLimit(.minutes(1)), .enabled(if: KafkaTestEnvironment.canRun))
struct KafkaSinkFatalErrorTests {
    @Test("a broker answering out of sequence makes the producer fatal; the retry of the batch gets a new one")
    func theNextAttemptGetsANewProducer() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("shop.public.products", partitions: 1)
        let sink = try KafkaSink(name: "bus", settings: settings(cluster.bootstrapServers, timeout: .seconds(5)), logger: quiet)
        try await sink.deliver([change("20-1", .insert, key: ["id": .number("1")])])
        cluster.failNextRequests(apiKey: 0, errorCodes: [45])  // OUT_OF_ORDER_SEQUENCE_NUMBER
        let error = await #expect(throws: KafkaSinkError.self) {
            try await sink.deliver([change("20-2", .insert, key: ["id": .number("2")])])
        }
        #expect(error?.code == .fatal, "\(String(describing: error))")
        #expect(error?.description.contains("event 20-2") == true)
        try await sink.deliver([change("20-2", .insert, key: ["id": .number("2")])])
        try await sink.close()
        let records = try await consumeWithKcat(topic: "shop.public.products", bootstrap: cluster.bootstrapServers)
        #expect(records.compactMap { $0.header("spillway-id") } == ["20-1", "20-2"])
    }
}

@Suite("Kafka sink records with format: debezium (no servers)")
struct KafkaDebeziumRecordTests {
    static let encoder = EventEncoder(format: .debezium, envelope: DebeziumEnvelope(serverName: "shop", database: "db"), now: { 1 })

    @Test func valueIsTheEnvelopeKeyTheKeyAndDeletesGetTombstonesWhateverTheSetting() throws {
        let events = [change("5-1", .insert, key: ["id": .number("3")]), change("5-2", .delete, key: ["id": .number("3")])]
        let records = try KafkaSink.records(for: events, settings: settings(tombstones: false), encoder: Self.encoder)
        try #require(records.messages.count == 3)
        #expect(records.eventIndices == [0, 1, 1])
        #expect(text(records.messages[0].key) == #"{"id":3}"#)
        let value = try JSONParser.parse(try #require(text(records.messages[0].value))).objectValue
        #expect(value?["op"] == .string("c"))
        #expect(value?["source"]?.objectValue?["table"] == .string("products"))
        #expect(try JSONParser.parse(try #require(text(records.messages[1].value))).objectValue?["op"] == .string("d"))
        #expect(text(records.messages[2].key) == #"{"id":3}"#)
        #expect(records.messages[2].value == nil, "a tombstone after the delete")
    }
}
