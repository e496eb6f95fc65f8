import Synchronization

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

/// A batch handed to the producer; `delivered()` waits for the cluster's acknowledgements.
public final class KafkaPendingDelivery: Sendable {
    private enum Stage {
        case building
        case enqueued(PendingBatch, topics: [String], recordTopics: [Int])
        case refused(KafkaSinkError)
    }

    private struct State {
        var stage = Stage.building
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    init() {}

    func accept(_ batch: PendingBatch, topics: [String], recordTopics: [Int]) {
        settle(.enqueued(batch, topics: topics, recordTopics: recordTopics))
    }

    func refuse(_ error: KafkaSinkError) { settle(.refused(error)) }

    private func settle(_ stage: Stage) {
        let waiters = state.withLock { state in
            state.stage = stage
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Where each message was stored, in the order built, once every one is acknowledged. Throws if the
    /// batch could not be built or any message failed: the error names the first failure (not counting
    /// messages skipped because of it) and how many failed.
    public func delivered() async throws(KafkaSinkError) -> [KafkaDeliveryResult] {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if case .building = state.stage {
                    state.waiters.append(continuation)
                    return false
                }
                return true
            }
            if ready { continuation.resume() }
        }
        let stage = state.withLock { $0.stage }
        switch stage {
        case .building:
            preconditionFailure("woken before the batch was built")
        case .refused(let error):
            throw error
        case .enqueued(let batch, let topics, let recordTopics):
            let outcomes = await batch.outcomes()
            guard !outcomes.failures.isEmpty else {
                return recordTopics.indices.map {
                    KafkaDeliveryResult(topic: topics[recordTopics[$0]], partition: outcomes.partitions[$0], offset: outcomes.offsets[$0])
                }
            }
            let failures = outcomes.failures.sorted { $0.key < $1.key }
            let (index, first) = failures.first(where: { $0.value.code != .notEnqueued }) ?? failures[0]
            let error = first.atMessage(index)
            throw recordTopics.count == 1 ? error : error.first(of: failures.count, in: recordTopics.count)
        }
    }
}
