import Logging
import SpillwayCore
import SpillwayPostgres
import Synchronization

/// The replication source for the pipeline engine: reads the slot (`ReplicationReader`), saves the
/// position, and confirms to the server only what a saved checkpoint covers. A heartbeat message every
/// `source.heartbeat` keeps an idle slot's confirmed position moving; with `--once` a marker written at
/// start-up ends the read once everything before it has arrived.
final class ReplicationChangeSource: ChangeSource, @unchecked Sendable {
    // @unchecked Sendable: `next` runs on the reader stage only and owns `position` and `isDone`; the
    // checkpointer's calls use the control connection (its queue serialises I/O), the reader's confirm
    // (thread-safe) and `heartbeat` under its Mutex.
    let start: ReplicationPosition
    private let config: SpillwayConfig
    private let reader: ReplicationReader
    private let control: PostgresConnection
    private let checkpoints: CheckpointStore
    private let logger: Logger
    /// `--once`: the marker's position; reading ends once the stream passed it.
    private let target: LSN?
    private var isDone = false
    private let heartbeat: Mutex<PeriodicTask<ContinuousClock.Instant>>

    static func open(config: SpillwayConfig, record: CheckpointRecord, control: PostgresConnection, once: Bool,
                     logger: Logger) async throws -> ReplicationChangeSource {
        let reader = try await ReplicationReader.open(config: config, from: record.replicationPosition, logger: logger)
        do {
            // `--once` stops at a marker written now: everything committed before it has then been delivered.
            let target = once ? try await emitHeartbeat(on: control) : nil
            return ReplicationChangeSource(config: config, record: record, reader: reader, control: control, target: target,
                                           logger: logger)
        } catch {
            await reader.close()
            throw error
        }
    }

    private init(config: SpillwayConfig, record: CheckpointRecord, reader: ReplicationReader, control: PostgresConnection,
                 target: LSN?, logger: Logger) {
        self.config = config
        self.start = record.replicationPosition
        self.reader = reader
        self.control = control
        self.checkpoints = CheckpointStore(schema: config.schema)
        self.target = target
        self.logger = logger
        self.heartbeat = Mutex(PeriodicTask(every: config.source.replication.heartbeat, startingAt: .now, runsImmediately: true))
    }

    func next(after position: ReplicationPosition, maximum: Int, wait: Duration) async throws -> SourceBatch<ReplicationPosition>? {
        if isDone { return nil }
        let batch = try await reader.next(maximum: maximum, wait: wait)
        let end = batch.position ?? position
        // Everything up to the marker is read; the checkpointer saves it once delivered. Nothing after it is
        // read, so nothing is left unconfirmed for the slot to send again.
        if let target, batch.events.isEmpty, end.index == nil, end.commitLSN >= target { isDone = true }
        return SourceBatch(events: batch.events, end: batch.position, confirmable: batch.confirmable)
    }

    func save(_ position: ReplicationPosition, lastEventPosition: String?, events: Int) async throws {
        try await checkpoints.save(consumer: config.consumer, position: position, lastEventPosition: lastEventPosition,
                                   deliveredEvents: events, on: control)
    }

    func confirm(_ lsn: LSN?) async throws {
        // Without an LSN, a status update that repeats what was confirmed: the server sees the reader alive.
        try await reader.confirm(flush: lsn ?? .zero)
    }

    func maintain(isFinal: Bool) async throws {
        guard !isFinal, heartbeat.withLock({ $0.isDue(at: .now) }) else { return }
        _ = try await Self.emitHeartbeat(on: control)
    }

    func recordError(_ message: String) async {
        await checkpoints.recordError(consumer: config.consumer, message: message, on: control)
    }

    func close() async {
        await reader.close()
    }

    /// A non-transactional logical message: it flows through the slot even when no published table changes,
    /// so the confirmed position can follow the WAL. Returns the position the stream gives it.
    private static func emitHeartbeat(on connection: PostgresConnection) async throws -> LSN {
        let result = try await connection.query("SELECT pg_logical_emit_message(false, $1, '')::text", [ReplicationEventBuilder.heartbeatPrefix])
        let end = result.first?[0].flatMap { LSN(string: $0) } ?? .zero
        return ReplicationEventBuilder.position(ofNonTransactionalMessageEndingAt: end)
    }
}
