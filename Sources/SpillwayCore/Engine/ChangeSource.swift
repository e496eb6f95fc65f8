/// A source of change events, as the pipeline engine drives it: both the audit_log poller and the
/// replication slot reader conform (their adapters live with the pipeline). The engine reads batch after
/// batch with `next`, hands them to the sinks, and once every sink acknowledged a run of them, saves the
/// latest position with `save` and confirms what the saved position allows with `confirm`.
///
/// `next` runs on the reader stage while `save`, `confirm` and `maintain` run on the checkpointer stage,
/// concurrently with it: a conforming type serialises what they share.
public protocol ChangeSource: Sendable {
    associatedtype Position: SourcePosition

    /// Where the consumer's checkpoint says it stands.
    var start: Position { get }

    /// The batch after `position` (the end of the previous batch read, acknowledged or not), with at most
    /// `maximum` events, waiting at most about `wait` for something to arrive (then an idle batch). Nil when
    /// the source has nothing more to give: with `--once`, everything committed at the start is read.
    func next(after position: Position, maximum: Int, wait: Duration) async throws -> SourceBatch<Position>?

    /// Saves the consumer's checkpoint: `position`, the last event's position, and how many events the
    /// save covers. Only ever called with a position every sink acknowledged.
    func save(_ position: Position, lastEventPosition: String?, events: Int) async throws

    /// `save`, deleting `outboxRows` (`source.outbox.delete_after`) in the same statement, so a row goes only
    /// with the checkpoint that covers its event, once every sink acknowledged it. The live sources implement
    /// it; the default (replays, detached, which save nothing) ignores the rows.
    func save(_ position: Position, lastEventPosition: String?, events: Int, outboxRows: [OutboxRow]) async throws

    /// Tells the server it may forget the WAL up to `lsn` (`lsn` nil: only that the reader is alive).
    func confirm(_ lsn: LSN?) async throws

    /// How often `confirm(nil)` must at least be called while nothing new is confirmable, also while the
    /// reader waits for room (a sink stalls): the replication server ends a silent consumer's connection.
    var statusInterval: Duration { get }

    /// Periodic work between saves (heartbeats, retention); `isFinal` when the pipeline stops.
    func maintain(isFinal: Bool) async throws

    /// Records why delivery is failing, for `status` (best effort).
    func recordError(_ message: String) async

    func close() async
}

extension ChangeSource {
    public var statusInterval: Duration { .seconds(10) }

    public func save(_ position: Position, lastEventPosition: String?, events: Int, outboxRows: [OutboxRow]) async throws {
        try await save(position, lastEventPosition: lastEventPosition, events: events)
    }
}
