import Testing

@testable import SpillwayKafka

@Suite struct ProducerPropertiesTests {
    @Test func forcesIdempotenceAndAcksAndDefaultsThePartitioner() throws {
        let effective = try ProducerProperties.effective(["bootstrap.servers": "b:9092", "acks": "all"])
        let values = Dictionary(effective.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(values == [
            "bootstrap.servers": "b:9092", "enable.idempotence": "true", "acks": "all", "partitioner": "murmur2_random",
        ])
        // The forced pair is applied last, so nothing set before it can weaken it.
        #expect(effective.suffix(2).map(\.name) == ["enable.idempotence", "acks"])
    }

    @Test func userMayOverrideThePartitioner() throws {
        let effective = try ProducerProperties.effective(["partitioner": "consistent_random"])
        #expect(effective.filter { $0.name == "partitioner" }.map(\.value) == ["consistent_random"])
    }

    @Test func refusesToDisableIdempotence() {
        let error = #expect(throws: KafkaSinkError.self) {
            try ProducerProperties.effective(["enable.idempotence": "false"])
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.property == "enable.idempotence")
        #expect(error?.description.contains("remove 'enable.idempotence'") == true)
    }

    @Test(arguments: ["acks", "request.required.acks"])
    func refusesWeakerAcks(name: String) throws {
        let error = #expect(throws: KafkaSinkError.self) { try ProducerProperties.effective([name: "1"]) }
        #expect(error?.property == name)
        #expect(try ProducerProperties.effective([name: "-1"]).isEmpty == false)
    }

    @Test func sensitiveNames() {
        for name in ["sasl.password", "sasl.mechanisms", "ssl.key.password", "ssl.key.pem", "client.secret", "SASL.USERNAME"] {
            #expect(ProducerProperties.isSensitive(name), "\(name)")
        }
        for name in ["bootstrap.servers", "ssl.ca.location", "linger.ms"] {
            #expect(!ProducerProperties.isSensitive(name), "\(name)")
        }
    }

    @Test func redactsSensitiveValuesOnly() {
        let text = #"Invalid value "hunter2" for "sasl.password"; linger.ms is "5""#
        let redacted = ProducerProperties.redact(text, values: ["sasl.password": "hunter2", "linger.ms": "5"])
        #expect(redacted == #"Invalid value "[redacted]" for "sasl.password"; linger.ms is "5""#)
    }

    @Test func durationsBecomeClampedMilliseconds() {
        #expect(Duration.milliseconds(1500).clampedMilliseconds == 1500)
        #expect(Duration.seconds(-3).clampedMilliseconds == 0)
        #expect(Duration.seconds(Int64.max).clampedMilliseconds == Int32.max)
    }
}

@Suite struct DeliveryTrackerTests {
    @Test func settlesOnceEveryMessageCompletedInAnyOrder() async {
        let tracker = DeliveryTracker()
        let batch = tracker.register(count: 3)
        let other = tracker.register(count: 1)
        #expect(batch.token(at: 0) != 0 && batch.token(at: 0) != other.token(at: 0))
        for index in [2, 0, 1] {
            tracker.complete(batch.token(at: index), with: .stored(partition: Int32(index), offset: 7))
            tracker.complete(batch.token(at: index), with: .failed(.closed()))  // a second report is ignored
        }
        let outcomes = await batch.outcomes()
        #expect(outcomes.partitions == [0, 1, 2])
        #expect(outcomes.failures.isEmpty)
        #expect(tracker.pendingCount == 1)  // `other` is still waiting
        tracker.complete(other.token(at: 0), with: .failed(.closed()))
        #expect(await other.outcomes().failures.keys.sorted() == [0])
        #expect(tracker.pendingCount == 0)
    }

    @Test func waiterBeforeTheLastReportIsWoken() async {
        let tracker = DeliveryTracker()
        let batch = tracker.register(count: 2)
        async let outcomes = batch.outcomes()
        tracker.complete(batch.token(at: 1), with: .stored(partition: 4, offset: 1))
        try? await Task.sleep(for: .milliseconds(20))
        tracker.complete(batch.token(at: 0), with: .stored(partition: 3, offset: 2))
        #expect(await outcomes.offsets == [2, 1])
    }

    @Test func failAllCompletesPendingBatches() async {
        let tracker = DeliveryTracker()
        let batch = tracker.register(count: 2)
        tracker.complete(batch.token(at: 0), with: .stored(partition: 0, offset: 0))
        tracker.failAll(with: .closed())
        let outcomes = await batch.outcomes()
        #expect(outcomes.offsets[0] == 0)
        #expect(outcomes.failures.keys.sorted() == [1])
        #expect(tracker.pendingCount == 0)
    }
}

@Suite struct PartitionerReferenceTests {
    // Vectors from the Java client's UtilsTest.testMurmur2: the reference the integration
    // tests use to check where librdkafka put each keyed record is itself right.
    @Test func matchesKafkaMurmur2() {
        let vectors: KeyValuePairs<String, Int32> = [
            "21": -973_932_308, "foobar": -790_332_482, "abc": 479_470_107,
            "a-little-bit-long-string": -985_981_536, "a-little-bit-longer-string": -1_486_304_829,
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58_897_971,
        ]
        for (key, hash) in vectors { #expect(murmur2(Array(key.utf8)) == hash, "\(key)") }
    }
}
