import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres
import Synchronization

/// The replication source for the pipeline engine: reads the slot (`ReplicationReader`), saves the
/// position, and confirms to the server only what a saved checkpoint covers. A heartbeat message every
/// `source.heartbeat` keeps an idle slot's confirmed position moving; with `--once` a marker written at
/// start-up ends the read once everything before it has arrived. `source.snapshot`: chunks of the tables'
/// rows are emitted at markers written after each was read (`SnapshotChunk` says why that is consistent).
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
    /// `source.snapshot`, owned by the reader stage like `isDone`: where the snapshot stands as of the last
    /// batch read, its own connection (a chunk is a transaction, which the control connection's checkpoint
    /// saves must not land in), the chunk waiting for its marker, and the chunk being emitted.
    private var snapshot: SnapshotProgress?
    private var snapshotConnection: PostgresConnection?
    private var pendingChunk: (chunk: SnapshotChunk, marker: LSN)?
    private var emission: SnapshotEmission?
    private var tables: [QualifiedName: TableInfo] = [:]
    /// Transactions the stream delivered lately: a chunk whose snapshot still counts one of them as running
    /// could miss a change already delivered (a commit becomes visible a moment after the stream can carry it,
    /// longer with synchronous replication), so it is read again.
    private var recentTransactions = RecentTransactions(capacity: 8192)
    private var backfills: BackfillPoller
    /// The last backfill progress recorded on its request (the checkpointer's).
    private let recordedBackfill = Mutex<SnapshotProgress?>(nil)

    static func open(config: SpillwayConfig, record: CheckpointRecord, control: PostgresConnection, once: Bool,
                     logger: Logger) async throws -> ReplicationChangeSource {
        if let snapshot = record.snapshot, !snapshot.isDone {
            try await SnapshotChunkReader.requirePrimaryKeys(of: snapshot.tables.filter { !$0.isDone }.map(\.name), on: control)
        }
        let reader = try await ReplicationReader.open(config: config, from: record.replicationPosition, logger: logger,
                                                      isStopping: { Task.isShuttingDownGracefully })
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
        self.snapshot = record.snapshot
        self.backfills = BackfillPoller(config: config, logger: logger)
    }

    func next(after position: ReplicationPosition, maximum: Int, wait: Duration) async throws -> SourceBatch<ReplicationPosition>? {
        if isDone { return nil }
        if emission != nil {
            // The chunk's marker was reached: its rows go out before anything after the marker is read.
            // Mutated in place: a copy of the emission would copy the chunk's remaining rows.
            if let piece = emission?.next(maximum: maximum) {
                snapshot = piece.progress
                var end = position
                end.snapshot = piece.progress
                return SourceBatch(events: piece.events, end: end, isProgress: true)
            }
            emission = nil
            if snapshot?.isDone == true {
                logger.info("snapshot done: every captured table's rows were emitted")
                await closeSnapshotConnection()
            }
        }
        if pendingChunk == nil, snapshot?.isDone ?? true, let started = try await backfills.poll(current: snapshot, on: control) {
            snapshot = started
        }
        if pendingChunk == nil, let progress = snapshot, !progress.isDone { try await readChunk(progress: progress) }
        var batch = try await reader.next(maximum: maximum, wait: wait, stop: pendingChunk?.marker)
        recentTransactions.insert(batch.events)
        if pendingChunk != nil {
            pendingChunk?.chunk.discardRows(changedIn: batch.events)
            if batch.reachedStop, let progress = snapshot, var pending = pendingChunk.take() {
                emission = SnapshotEmission(taking: &pending.chunk, progress: progress, chunkSize: config.source.snapshotChunkSize)
            }
        }
        batch.position?.snapshot = snapshot
        let end = batch.position ?? position
        // Everything up to the marker is read; the checkpointer saves it once delivered. Nothing after it is
        // read, so nothing is left unconfirmed for the slot to send again. A snapshot still running goes on.
        if let target, batch.events.isEmpty, end.index == nil, end.commitLSN >= target, snapshot?.isDone ?? true, emission == nil {
            isDone = true
        }
        return SourceBatch(events: batch.events, end: batch.position, isProgress: batch.reachedStop ? true : nil,
                           confirmable: batch.confirmable)
    }

    /// Reads the next chunk and writes the marker it waits for; a chunk that may have missed a change the
    /// stream already delivered is dropped and read again on the next call.
    private func readChunk(progress: SnapshotProgress) async throws {
        guard let current = progress.current else { return }
        let connection: PostgresConnection
        if let snapshotConnection {
            connection = snapshotConnection
        } else {
            // The same network timeouts as the stream's: a chunk read on a silently cut network must fail (and be
            // read again after the reconnect), not wait for the kernel's retransmission timeout.
            connection = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-snapshot",
                                                              timeouts: config.ha.networkTimeouts)
            snapshotConnection = connection
        }
        if tables[current.name] == nil {
            tables[current.name] = try await PostgresCatalog.describe(current.name, on: connection)
        }
        guard let table = tables[current.name] else { return }
        let settings = config.source.replication
        let chunkReader = SnapshotChunkReader(chunkSize: config.source.snapshotChunkSize) { name in
            settings.tenantColumns[name.description] ?? settings.tenantColumn
        }
        let (chunk, _) = try await chunkReader.readChunk(of: table, progress: progress, on: connection)
        if chunk.visibility.showsAsRunning(anyOf: recentTransactions.xids) {
            logger.debug("snapshot chunk raced a commit the stream already carried; reading it again", metadata: ["table": "\(chunk.table)"])
            try await Task.sleep(for: .milliseconds(20))
            return
        }
        // The marker follows every transaction the chunk's snapshot shows (they committed before it was taken).
        pendingChunk = (chunk, try await reader.emitMarker())
    }

    private func closeSnapshotConnection() async {
        await snapshotConnection?.close()
        snapshotConnection = nil
    }

    func save(_ position: ReplicationPosition, lastEventPosition: String?, events: Int) async throws {
        try await save(position, lastEventPosition: lastEventPosition, events: events, outboxRows: [])
    }

    /// `outboxRows` (`source.outbox.delete_after`) are deleted by the checkpoint's own statement.
    func save(_ position: ReplicationPosition, lastEventPosition: String?, events: Int, outboxRows: [OutboxRow]) async throws {
        try await checkpoints.save(consumer: config.consumer, position: position, lastEventPosition: lastEventPosition,
                                   deliveredEvents: events, deletingOutboxRows: outboxRows, on: control)
        if position.snapshot?.backfill != nil, recordedBackfill.withLock({ $0 }) != position.snapshot {
            try await BackfillPoller.record(position.snapshot, config: config, logger: logger, on: control)
            recordedBackfill.withLock { $0 = position.snapshot }
        }
    }

    /// A third of the server's `wal_sender_timeout`, at most 10 s (pg_recvlogical's default interval).
    var statusInterval: Duration {
        guard let timeout = reader.serverTimeout else { return .seconds(10) }
        return max(.milliseconds(100), min(.seconds(10), timeout / 3))
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
        await closeSnapshotConnection()
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

/// The 32-bit ids of the last `capacity` transactions the stream delivered.
struct RecentTransactions {
    private var ring: [UInt64]
    private var next = 0
    private var last: UInt64?

    init(capacity: Int) { ring = Array(repeating: 0, count: capacity) }

    var xids: some Sequence<UInt64> { ring.lazy.filter { $0 != 0 } }

    mutating func insert(_ events: [ChangeEvent]) {
        for event in events {
            guard let txid = event.txid, txid != last else { continue }
            last = txid
            ring[next] = txid
            next = (next + 1) % ring.count
        }
    }
}
