/// One Kafka record header. Names need not be unique; order is kept.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]

    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }
}

/// A record to produce.
public struct KafkaOutgoingMessage: Sendable, Hashable {
    /// The topic to produce to.
    public var topic: String
    /// The record key; records with equal keys go to the same partition. Default: `nil` (no key).
    public var key: [UInt8]?
    /// The record value; `nil` produces a tombstone (a null value).
    public var value: [UInt8]?
    /// Record headers, in order. Default: none.
    public var headers: [KafkaHeader]

    public init(topic: String, key: [UInt8]? = nil, value: [UInt8]?, headers: [KafkaHeader] = []) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Where the cluster stored a record once it acknowledged it.
public struct KafkaDeliveryResult: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// A batch librdkafka holds; `delivered()` waits for the cluster's acknowledgements.
public final class KafkaPendingDelivery: Sendable {
    let batch: PendingBatch
    private let topics: [String]

    init(batch: PendingBatch, messages: [KafkaOutgoingMessage]) {
        self.batch = batch
        self.topics = messages.map(\.topic)
    }

    /// Where each message was stored, in the order enqueued, once every one is acknowledged. Throws if any
    /// failed: the error names the first failure (not counting messages skipped because of it) and how
    /// many failed.
    public func delivered() async throws(KafkaSinkError) -> [KafkaDeliveryResult] {
        let outcomes = await batch.outcomes()
        guard !outcomes.failures.isEmpty else {
            return topics.indices.map {
                KafkaDeliveryResult(topic: topics[$0], partition: outcomes.partitions[$0], offset: outcomes.offsets[$0])
            }
        }
        let failures = outcomes.failures.sorted { $0.key < $1.key }
        let (index, first) = failures.first(where: { $0.value.code != .notEnqueued }) ?? failures[0]
        let error = first.atMessage(index)
        throw topics.count == 1 ? error : error.first(of: failures.count, in: topics.count)
    }
}
