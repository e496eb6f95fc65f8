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
