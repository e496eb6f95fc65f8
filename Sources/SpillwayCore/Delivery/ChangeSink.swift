/// A destination for change events. One module per kind implements it.
public protocol ChangeSink: Sendable {
    var name: String { get }

    /// Returns only when every event of `batch` is durable at the destination: the pipeline checkpoints
    /// past a batch only after every sink's `deliver` returned. Throws to have the batch retried; a sink
    /// must accept the same batch again after a failure (delivery is at-least-once).
    func deliver(_ batch: [ChangeEvent]) async throws

    /// Flushes and releases resources; called once, after the last `deliver`.
    func close() async throws
}

/// A sink that can take the next batch before the previous one is acknowledged, so a pipeline keeps
/// several batches in flight to it (Kafka: the cluster's round trip no longer bounds throughput).
///
/// The sink writes batches in the order they were submitted. When an acknowledgement fails, batches
/// submitted after it may have been written: to keep per-key order the caller delivers that batch and every
/// later one again, in order (the pipelines do so by resuming from their checkpoint).
public protocol PipelinedChangeSink: ChangeSink {
    /// Hands `batch` to the sink and returns once the sink holds it, before it is durable. Throws when the
    /// sink cannot take it (e.g. a record it cannot build).
    func submit(_ batch: [ChangeEvent]) async throws -> SinkAcknowledgement

    /// Called before each session's first submission. A sink that stopped taking batches after a failure (so
    /// that nothing submitted after the failed batch overtakes it) takes them again from here on.
    func resume()
}

extension PipelinedChangeSink {
    public func resume() {}
}

extension PipelinedChangeSink {
    public func deliver(_ batch: [ChangeEvent]) async throws {
        try await submit(batch).wait()
    }
}

/// Completes when every event of a submitted batch is durable at the destination.
public struct SinkAcknowledgement: Sendable {
    private let waitForAcknowledgement: @Sendable () async throws -> Void
    private let abandonWaiting: @Sendable () -> Void

    /// `abandon` makes a pending `wait` end soon with an error, by dropping what the sink still holds of
    /// this batch and of every later one (none of them was acknowledged, so all are delivered again, in
    /// order). A wait that cannot end on its own (Kafka retries a record until the cluster stores it)
    /// needs one; the default does nothing.
    public init(_ wait: @escaping @Sendable () async throws -> Void, abandon: @escaping @Sendable () -> Void = {}) {
        waitForAcknowledgement = wait
        abandonWaiting = abandon
    }

    /// An acknowledgement that is already complete (an empty batch).
    public static let immediate = SinkAcknowledgement {}

    /// Returns once the batch is durable; throws if any of its events failed.
    public func wait() async throws {
        try await waitForAcknowledgement()
    }

    /// Gives up waiting: the pipeline calls it when it stops (a graceful shutdown's grace ran out, or its
    /// session was cancelled) while this batch is still unacknowledged.
    public func abandon() {
        abandonWaiting()
    }
}
