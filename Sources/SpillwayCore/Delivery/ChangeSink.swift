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
}

extension PipelinedChangeSink {
    public func deliver(_ batch: [ChangeEvent]) async throws {
        try await submit(batch).wait()
    }
}

/// Completes when every event of a submitted batch is durable at the destination.
public struct SinkAcknowledgement: Sendable {
    private let waitForAcknowledgement: @Sendable () async throws -> Void

    public init(_ wait: @escaping @Sendable () async throws -> Void) {
        waitForAcknowledgement = wait
    }

    /// An acknowledgement that is already complete (an empty batch).
    public static let immediate = SinkAcknowledgement {}

    /// Returns once the batch is durable; throws if any of its events failed.
    public func wait() async throws {
        try await waitForAcknowledgement()
    }
}
