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
    @Test func resumesOnceEveryMessageCompletedInAnyOrder() async {
        let tracker = DeliveryTracker()
        let outcomes = await withCheckedContinuation { continuation in
            let tokens = tracker.register(count: 3, continuation: continuation)
            #expect(!tokens.contains(0))
            for token in tokens.reversed() {
                let partition = Int32(token - tokens.lowerBound)
                tracker.complete(token, with: .success(KafkaDeliveryResult(topic: "t", partition: partition, offset: 7)))
                tracker.complete(token, with: .failure(.closed()))  // a second report is ignored
            }
        }
        #expect(outcomes.map { try? $0.get().partition } == [0, 1, 2])
        #expect(tracker.pendingCount == 0)
    }

    @Test func failAllCompletesPendingBatches() async {
        let tracker = DeliveryTracker()
        let outcomes = await withCheckedContinuation { continuation in
            let tokens = tracker.register(count: 2, continuation: continuation)
            tracker.complete(tokens.lowerBound, with: .success(KafkaDeliveryResult(topic: "t", partition: 0, offset: 0)))
            tracker.failAll(with: .closed())
        }
        #expect((try? outcomes[0].get()) != nil)
        #expect(throws: KafkaSinkError.self) { try outcomes[1].get() }
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
