import Foundation
import Logging
import SpillwayKafka
import SpillwayTestSupport
import Testing

/// Runs against an in-process librdkafka mock cluster over loopback TCP; kcat reads back.
@Suite(.serialized, .timeLimit(.minutes(2)), .enabled(if: KafkaTestEnvironment.canRun))
struct ProducerIntegrationTests {
    static let logger: Logger = {
        var logger = Logger(label: "spillway.kafka.test")
        logger.logLevel = .error
        return logger
    }()

    func producer(_ bootstrap: String, _ extra: [String: String] = [:]) throws -> KafkaProducerClient {
        try KafkaProducerClient(
            properties: ["bootstrap.servers": bootstrap, "linger.ms": "5"].merging(extra) { $1 }, logger: Self.logger)
    }

    @Test func keyedMessagesLandOnTheirKeysPartitionInOrder() async throws {
        let partitions = 6
        let cluster = try KafkaMockCluster(brokers: 3)
        try cluster.createTopic("keyed", partitions: partitions)
        let producer = try producer(cluster.bootstrapServers)

        let messages = (0..<1000).map { i in
            KafkaOutgoingMessage(topic: "keyed", key: "key-\(i % 37)".bytes, value: "\(i)".bytes)
        }
        var results: [KafkaDeliveryResult] = []
        for batch in stride(from: 0, to: messages.count, by: 250) {
            results += try await producer.send(Array(messages[batch..<batch + 250]))
        }
        try await producer.close()

        #expect(results.count == 1000)
        for (message, result) in zip(messages, results) {
            #expect(result.topic == "keyed")
            #expect(result.partition == expectedPartition(forKey: try #require(message.key), partitions: partitions))
        }

        let records = try await consumeWithKcat(topic: "keyed", bootstrap: cluster.bootstrapServers)
        #expect(records.count == 1000)
        #expect(Set(records.compactMap { $0.payload.flatMap(Int.init) }) == Set(0..<1000), "no loss, no duplicates")
        var partitionOfKey: [String: Int32] = [:]
        for record in records {
            let key = try #require(record.key)
            #expect(record.partition == expectedPartition(forKey: key.bytes, partitions: partitions), "\(key)")
            #expect(partitionOfKey.updateValue(record.partition, forKey: key) ?? record.partition == record.partition)
            // The delivery report said where this record went.
            let sent = try #require(record.payload.flatMap(Int.init))
            try #require(results.indices.contains(sent), "payload \(sent) was never sent")
            #expect(results[sent].partition == record.partition && results[sent].offset == record.offset)
        }
        for (key, keyed) in Dictionary(grouping: records, by: { $0.key ?? "" }) {
            let inOffsetOrder = keyed.sorted { $0.offset < $1.offset }.compactMap { $0.payload.flatMap(Int.init) }
            #expect(inOffsetOrder == inOffsetOrder.sorted(), "records with key \(key) kept their order")
        }
    }

    @Test func tombstonesEmptyValuesAndHeadersArrive() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("rows", partitions: 1)
        let producer = try producer(cluster.bootstrapServers)
        let results = try await producer.send([
            KafkaOutgoingMessage(
                topic: "rows", key: "k1".bytes, value: "v1".bytes,
                headers: [KafkaHeader("table", "public.users".bytes), KafkaHeader("empty", [])]),
            KafkaOutgoingMessage(topic: "rows", key: "k1".bytes, value: nil),
            KafkaOutgoingMessage(topic: "rows", key: "k2".bytes, value: []),
            KafkaOutgoingMessage(topic: "rows", value: "unkeyed".bytes),
        ])
        #expect(results.map(\.offset) == [0, 1, 2, 3])
        try await producer.close()

        let records = try await consumeWithKcat(topic: "rows", bootstrap: cluster.bootstrapServers)
            .sorted { $0.offset < $1.offset }
        try #require(records.count == 4)
        #expect(records[0].payload == "v1")
        #expect(records[0].headers == ["table", "public.users", "empty", ""])
        #expect(records[1].key == "k1" && records[1].payload == nil, "a nil value is a tombstone")
        #expect(records[1].headers == nil)
        #expect(records[2].payload == "", "an empty value is not a tombstone")
        #expect(records[3].key == nil && records[3].payload == "unkeyed")
    }

    @Test func unknownPropertyIsNamed() {
        let error = #expect(throws: KafkaSinkError.self) {
            try producer("127.0.0.1:1", ["no.such.property": "x"])
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.property == "no.such.property")
        #expect(error?.description.contains("no.such.property") == true)
        #expect(error?.description.contains("No such configuration property") == true, "librdkafka's message")
    }

    @Test func invalidValueIsNamedAndSecretsAreHidden() {
        let plain = #expect(throws: KafkaSinkError.self) { try producer("127.0.0.1:1", ["linger.ms": "banana"]) }
        #expect(plain?.property == "linger.ms")
        #expect(plain?.description.contains("banana") == true)

        let secret = "s3cret-not-a-number"
        let hidden = #expect(throws: KafkaSinkError.self) {
            try producer("127.0.0.1:1", ["sasl.kerberos.min.time.before.relogin": secret])
        }
        #expect(hidden?.property == "sasl.kerberos.min.time.before.relogin")
        #expect(hidden?.description.contains(secret) == false)
        #expect(hidden?.debugDescription.contains(secret) == false)
    }

    @Test func conflictingPropertiesFailCreation() {
        let error = #expect(throws: KafkaSinkError.self) {
            try producer("127.0.0.1:1", ["max.in.flight.requests.per.connection": "50"])
        }
        #expect(error?.code == .clientCreation)
    }

    @Test func unreachableBootstrapFailsTheSendInsteadOfHanging() async throws {
        let producer = try producer("127.0.0.1:1", ["message.timeout.ms": "1500"])
        let started = ContinuousClock.now
        let error = await #expect(throws: KafkaSinkError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: "nowhere", key: "k".bytes, value: "v".bytes))
        }
        #expect(error?.code == .deliveryTimedOut)
        #expect(error?.description.contains("message.timeout.ms") == true)
        #expect(ContinuousClock.now - started < .seconds(15))
        try await producer.close(timeout: .seconds(1))
    }

    @Test func messageTooLargeNamesTheSetting() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("big", partitions: 1)
        let producer = try producer(cluster.bootstrapServers, ["message.max.bytes": "1000"])
        let small = KafkaOutgoingMessage(topic: "big", key: "k".bytes, value: "ok".bytes)
        let large = KafkaOutgoingMessage(topic: "big", key: "k".bytes, value: Array(repeating: 1, count: 5000))

        let single = await #expect(throws: KafkaSinkError.self) { try await producer.send(large) }
        #expect(single?.code == .messageTooLarge)
        #expect(single?.description.contains("`message.max.bytes`") == true)

        // After a failure the producer takes nothing until resumed, so no later message overtakes the failed one.
        let held = await #expect(throws: KafkaSinkError.self) { try await producer.send(small) }
        #expect(held?.code == .notEnqueued)
        producer.resume()

        // A failure stops the batch, so the later message with the same key cannot overtake it.
        let batch = await #expect(throws: KafkaSinkError.self) { try await producer.send([small, large, small]) }
        #expect(batch?.code == .messageTooLarge)
        #expect(batch?.description.contains("2 of 3 messages were not delivered") == true)
        try await producer.close()
        let records = try await consumeWithKcat(topic: "big", bootstrap: cluster.bootstrapServers)
        #expect(records.count == 1)
    }

    @Test func aFullLocalQueueIsWaitedOutNotFailed() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("small-queue", partitions: 2)
        let producer = try producer(cluster.bootstrapServers, ["queue.buffering.max.messages": "10"])
        let messages = (0..<500).map { KafkaOutgoingMessage(topic: "small-queue", key: "\($0 % 7)".bytes, value: "\($0)".bytes) }
        let results = try await producer.send(messages)
        #expect(results.count == 500)
        try await producer.close()
    }

    @Test func closeWithinAnOutagePurgesAndFailsPendingSends() async throws {
        // The outage runs in the mock tool's process: librdkafka's mock aborts its process when a broker's
        // listener cannot be re-bound (its port taken meanwhile), which must not take the test run down.
        let mock = try await KafkaMockProcess.launch(["--brokers", "1", "--topic", "stuck:1"])
        defer { mock.stop() }
        let producer = try producer(mock.bootstrapServers, ["message.timeout.ms": "60000"])
        _ = try await producer.send(KafkaOutgoingMessage(topic: "stuck", value: "first".bytes))
        #expect(try await mock.command("down-all") == "ok")
        let pending = Task { try await producer.send(KafkaOutgoingMessage(topic: "stuck", value: "second".bytes)) }
        try await Task.sleep(for: .milliseconds(300))

        let closing = await #expect(throws: KafkaSinkError.self) { try await producer.close(timeout: .seconds(1)) }
        #expect(closing?.code == .flushTimedOut)
        let purged = await #expect(throws: KafkaSinkError.self) { try await pending.value }
        #expect(purged?.code == .closed, "purged when close gave up, not left waiting")
    }

    @Test func aFatalErrorIsReportedAsFatalWhateverItsCause() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("seq", partitions: 1)
        let producer = try producer(cluster.bootstrapServers)
        _ = try await producer.send(KafkaOutgoingMessage(topic: "seq", value: "first".bytes))
        #expect(!producer.hasFatalError)
        cluster.failNextRequests(apiKey: 0, errorCodes: [45])  // OUT_OF_ORDER_SEQUENCE_NUMBER: fatal when idempotent
        let error = await #expect(throws: KafkaSinkError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: "seq", value: "second".bytes))
        }
        #expect(error?.code == .fatal, "the report carries the cause's code, not _FATAL: \(String(describing: error))")
        #expect(error?.rdKafkaErrorName == "OUT_OF_ORDER_SEQUENCE_NUMBER")
        #expect(producer.hasFatalError)
        try? await producer.close(timeout: .seconds(1))
    }

    @Test func sendAfterCloseFails() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        let producer = try producer(cluster.bootstrapServers)
        _ = try await producer.send(KafkaOutgoingMessage(topic: "auto", value: "v".bytes))
        try await producer.close()
        try await producer.close()  // idempotent
        let error = await #expect(throws: KafkaSinkError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: "auto", value: "v".bytes))
        }
        #expect(error?.code == .closed)
    }
}
