import Foundation
import Logging
import SpillwayKafka
import SpillwayTestSupport
import Testing

/// Drives the `spillway-kafka-mock` tool as another process, as Spillway's own integration
/// tests and benchmarks will.
@Suite(.serialized, .timeLimit(.minutes(2)), .enabled(if: KafkaTestEnvironment.canRun))
struct OutageTests {
    @Test func mockToolAnswersCommands() async throws {
        let mock = try await KafkaMockProcess.launch(["--brokers", "2", "--topic", "t:2"])
        #expect(mock.bootstrapServers.split(separator: ",").count == 2)
        #expect(try await mock.command("down 2") == "ok")
        #expect(try await mock.command("up 2") == "ok")
        #expect(try await mock.command("topic extra 5") == "ok")
        #expect(try await mock.command("down 7").hasPrefix("error: "))
        #expect(try await mock.command("dance").hasPrefix("error: "))
        #expect(mock.terminate() == 0, "SIGTERM is a clean exit")
    }

    @Test func fullOutageWithinMessageTimeoutLosesNothing() async throws {
        let mock = try await KafkaMockProcess.launch(["--brokers", "3", "--topic", "outage:3"])
        defer { mock.stop() }
        var logger = Logger(label: "spillway.kafka.test")
        logger.logLevel = .critical  // the outage makes librdkafka log every refused connection
        let producer = try KafkaProducerClient(
            properties: [
                "bootstrap.servers": mock.bootstrapServers, "message.timeout.ms": "60000",
                "reconnect.backoff.max.ms": "500", "linger.ms": "5",
            ],
            logger: logger)
        func messages(_ range: Range<Int>) -> [KafkaOutgoingMessage] {
            range.map { KafkaOutgoingMessage(topic: "outage", key: "key-\($0 % 11)".bytes, value: "\($0)".bytes) }
        }

        _ = try await producer.send(messages(0..<20))  // connected, metadata known
        #expect(try await mock.command("down-all") == "ok")
        async let during = { (try await producer.send(messages(20..<520)), ContinuousClock.now) }()
        try await Task.sleep(for: .seconds(3))
        let restored = ContinuousClock.now
        #expect(try await mock.command("up-all") == "ok")
        let (results, delivered) = try await during
        #expect(delivered > restored, "the send waited out the outage")
        #expect(results.count == 500)
        try await producer.close()

        let records = try await consumeWithKcat(topic: "outage", bootstrap: mock.bootstrapServers)
        let values = records.compactMap { $0.payload.flatMap(Int.init) }
        #expect(Set(values) == Set(0..<520), "no loss")
        #expect(values.count == 520, "the idempotent producer wrote no duplicates")
        for (key, keyed) in Dictionary(grouping: records, by: { $0.key ?? "" }) {
            let inOffsetOrder = keyed.sorted { $0.offset < $1.offset }.compactMap { $0.payload.flatMap(Int.init) }
            #expect(inOffsetOrder == inOffsetOrder.sorted(), "records with key \(key) kept their order")
        }
    }
}
