import Logging
import SpillwayCore
import SpillwayPostgres
import Synchronization

/// The audit_log source for the pipeline engine: polls the audit table between snapshots (`AuditLogReader`),
/// woken by the wake trigger's NOTIFY, and saves the cursor as the checkpoint. With `--once` it ends when
/// a poll finds nothing new. Prunes retained rows (`source.prune`, `source.retention`) once a minute.
final class AuditLogChangeSource: ChangeSource, @unchecked Sendable {
    // @unchecked Sendable: `next` runs on the reader stage only and owns `reader` and `nextPoll`; the
    // checkpointer's calls use the control connection, whose queue serialises its I/O, and `pruning`
    // under its Mutex.
    let start: AuditLogCursor
    private let config: SpillwayConfig
    private let reader: AuditLogReader
    private let control: PostgresConnection
    private let checkpoints: CheckpointStore
    private let retention: AuditLogRetention
    private let isOnce: Bool
    private let logger: Logger
    private var nextPoll = ContinuousClock.now
    private var isCaughtUp = false
    private let pruning: Mutex<PeriodicTask<ContinuousClock.Instant>>
    /// Owned by the reader stage: backfill requests, and one just started that no batch has carried yet.
    private var backfills: BackfillPoller
    private var startedBackfill: SnapshotProgress?
    /// The last backfill progress recorded on its request (the checkpointer's).
    private let recordedBackfill = Mutex<SnapshotProgress?>(nil)

    static func open(config: SpillwayConfig, record: CheckpointRecord, control: PostgresConnection, once: Bool,
                     logger: Logger) async throws -> AuditLogChangeSource {
        if let snapshot = record.snapshot, !snapshot.isDone {
            try await SnapshotChunkReader.requirePrimaryKeys(of: snapshot.tables.filter { !$0.isDone }.map(\.name), on: control)
        }
        let reader = try await AuditLogReader.open(config: config, logger: logger)
        logger.info("reading", metadata: [LogKey.position: "\(record.position ?? "start")"])
        return AuditLogChangeSource(config: config, record: record, reader: reader, control: control, once: once, logger: logger)
    }

    private init(config: SpillwayConfig, record: CheckpointRecord, reader: AuditLogReader, control: PostgresConnection,
                 once: Bool, logger: Logger) {
        self.config = config
        self.start = record.cursor
        self.reader = reader
        self.control = control
        self.checkpoints = CheckpointStore(schema: config.schema)
        self.retention = AuditLogRetention(schema: config.schema, auditTable: AuditLogSchema(config: config).auditTable)
        self.isOnce = once
        self.logger = logger
        self.pruning = Mutex(PeriodicTask(every: config.source.deletesDeliveredRows ? .seconds(60) : .zero,
                                          startingAt: .now, runsImmediately: true))
        self.backfills = BackfillPoller(config: config, logger: logger)
    }

    func next(after cursor: AuditLogCursor, maximum: Int, wait: Duration) async throws -> SourceBatch<AuditLogCursor>? {
        if isCaughtUp { return nil }
        var cursor = cursor
        if cursor.batch == nil, cursor.snapshot?.isDone ?? true {
            if startedBackfill == nil { startedBackfill = try await backfills.poll(current: cursor.snapshot, on: control) }
            if let startedBackfill {
                cursor.snapshot = startedBackfill
                nextPoll = .now
            }
        }
        let clock = ContinuousClock()
        // Between polls, wait for the wake trigger's NOTIFY: a commit polls at once, silence polls every
        // `poll_interval` (the ground truth: a NOTIFY can be missed across a reconnect).
        if !isOnce, clock.now < nextPoll {
            let notified = try await reader.waitForCommits(timeout: min(wait, nextPoll - clock.now))
            guard notified || clock.now >= nextPoll else { return .idle }
        }
        guard let batch = try await reader.next(after: cursor, limit: maximum) else {
            if isOnce { return nil }
            nextPoll = clock.now + config.source.pollInterval
            return .idle
        }
        if batch.rowsRead == 0, batch.completedSnapshot, batch.cursor.snapshot?.isDone ?? true {
            // Caught up with this snapshot: the next poll waits (or, with --once, there is none).
            if isOnce { isCaughtUp = true } else { nextPoll = clock.now + config.source.pollInterval }
        } else {
            nextPoll = clock.now
        }
        startedBackfill = nil  // the batch's cursor carries it from here on
        return SourceBatch(events: batch.events, end: batch.cursor, isProgress: batch.rowsRead > 0)
    }

    func save(_ cursor: AuditLogCursor, lastEventPosition: String?, events: Int) async throws {
        try await save(cursor, lastEventPosition: lastEventPosition, events: events, outboxRows: [])
    }

    /// `outboxRows` (`source.outbox.delete_after`) are deleted by the checkpoint's own statement.
    func save(_ cursor: AuditLogCursor, lastEventPosition: String?, events: Int, outboxRows: [OutboxRow]) async throws {
        let saved = try await checkpoints.save(consumer: config.consumer, cursor: cursor, position: lastEventPosition,
                                               deliveredEvents: events, deletingOutboxRows: outboxRows, on: control)
        if let saved { reader.noteOwnTransaction(saved) }
        if cursor.snapshot?.backfill != nil, recordedBackfill.withLock({ $0 }) != cursor.snapshot {
            try await BackfillPoller.record(cursor.snapshot, config: config, logger: logger, on: control)
            recordedBackfill.withLock { $0 = cursor.snapshot }
        }
        if let lastEventPosition {
            logger.debug("checkpoint saved", metadata: [LogKey.position: "\(lastEventPosition)", LogKey.events: "\(events)"])
        }
    }

    func confirm(_ lsn: LSN?) async throws {}

    func maintain(isFinal: Bool) async throws {
        guard !isFinal, pruning.withLock({ $0.isDue(at: .now) }) else { return }
        let deleted = try await retention.prune(olderThan: config.source.retention, keepingBytes: config.source.retentionSize, on: control)
        if deleted > 0 {
            logger.info(config.source.prune ? "pruned audit rows every consumer has passed"
                            : "deleted audit rows past source.retention that every consumer has passed", metadata: ["rows": "\(deleted)"])
        }
    }

    func recordError(_ message: String) async {
        await checkpoints.recordError(consumer: config.consumer, message: message, on: control)
    }

    func close() async {
        await reader.close()
    }
}
