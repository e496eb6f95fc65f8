import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres
import Synchronization

/// The replication daemon: read the slot, hand each batch to every sink, checkpoint, and only then confirm
/// the position to the server. A heartbeat message keeps an idle slot's confirmed position moving.
public final class ReplicationPipeline: Service, @unchecked Sendable {
    // @unchecked Sendable: `deliveredEvents` is written only by the checkpointer stage (run()'s own task),
    // `latency` only by the acknowledger stage, and both are read after those stages ended.
    private let config: SpillwayConfig
    private let fanout: Fanout
    private let options: PipelineOptions
    private var logger: Logger
    private let checkpoints: CheckpointStore
    public private(set) var deliveredEvents = 0
    private var latency = DeliveryLatencyLog()
    static let heartbeatPrefix = "spillway-heartbeat"

    public init(config: SpillwayConfig, fanout: Fanout, options: PipelineOptions = .init(), logger: Logger) {
        self.config = config
        self.fanout = fanout
        self.options = options
        var logger = logger
        logger[metadataKey: LogKey.consumer] = "\(config.consumer)"
        self.logger = logger
        self.checkpoints = CheckpointStore(schema: config.schema)
    }

    public func run() async throws {
        defer { latency.logSummary(logger) }
        try await runReconnecting(logger: logger, retry: options.retry, database: config.database.redactedURL) {
            try await runConnected()
        }
    }

    private func runConnected() async throws {
        try await withSourceSession(config, fanout: fanout) { record in
            try await ReplicationReader.open(config: config, from: record.replicationPosition, logger: logger)
        } close: { reader in
            await reader.close()
        } body: { reader, control, record in
            try await stream(from: reader, startingAt: record.replicationPosition, control: control)
        }
    }

    /// A batch read from the slot and already handed to the pipelined sinks.
    private struct InFlightBatch: Sendable {
        var batch: ReplicationBatch
        var submission: FanoutSubmission
    }

    /// Three stages: a reader that takes batches from the slot and hands them to the pipelined sinks as fast
    /// as the window allows; an acknowledger that completes each batch's delivery, in order; and a
    /// checkpointer that saves and confirms the latest acknowledged position whenever its previous save is
    /// done. Up to `source.max_in_flight_batches` full batches' worth of events (in any number of smaller
    /// batches) are between reader and acknowledger, so a Kafka cluster's round trip overlaps the next batches, and a checkpoint save (a commit, with its WAL flush)
    /// never holds up acknowledgements: saves cover as many batches as arrived meanwhile.
    private func stream(from reader: ReplicationReader, startingAt start: ReplicationPosition,
                        control: PostgresConnection) async throws {
        // `--once` stops at a marker written now: everything committed before it has then been delivered.
        let target: LSN? = options.once ? try await emitHeartbeat(on: control) : nil
        let window = InFlightWindow(limit: config.source.batchSize * config.source.maxInFlightBatches)
        let (inFlight, submitted) = AsyncStream.makeStream(of: InFlightBatch.self)
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let progress = AcknowledgedProgress(start: start)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                defer { submitted.finish() }
                try await readAndSubmit(from: reader, startingAt: start, until: target, window: window, into: submitted)
            }
            group.addTask { [self] in
                defer {
                    window.close()  // nothing is released any more: a reader waiting for room stops
                    wake.finish()
                }
                try await acknowledge(inFlight, window: window, progress: progress, wake: wake, control: control)
            }
            do {
                try await checkpoint(wakeups, progress: progress, reader: reader, startingAt: start, control: control)
            } catch {
                group.cancelAll()
                throw error
            }
            // The reader's CancellationError (the window closed under it) only echoes the failure that closed it.
            var failure: (any Error)?
            while let result = await group.nextResult() {
                if case .failure(let error) = result, failure == nil || failure is CancellationError { failure = error }
            }
            if let failure { throw failure }
        }
        logger.info("stopped", metadata: [LogKey.events: "\(deliveredEvents)"])
    }

    /// Reads batches and hands each to the pipelined sinks (which only queue it: a Kafka sink builds its
    /// records on the producer's own queue), taking room in the window for each before it goes on.
    private func readAndSubmit(from reader: ReplicationReader, startingAt start: ReplicationPosition, until target: LSN?,
                               window: InFlightWindow, into submitted: AsyncStream<InFlightBatch>.Continuation) async throws {
        var position = start
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let batch = try await reader.next(maximum: config.source.batchSize, wait: .milliseconds(250))
            try await window.acquire(Self.windowShare(of: batch))
            let submission = batch.events.isEmpty ? FanoutSubmission.empty : try await fanout.submit(batch.events)
            submitted.yield(InFlightBatch(batch: batch, submission: submission))
            if let next = batch.position { position = next }
            // Everything up to the marker is read; the checkpointer saves it once delivered. Nothing after it
            // is read, so nothing is left unconfirmed for the slot to send again.
            if let target, batch.events.isEmpty, position.index == nil, position.commitLSN >= target { return }
        }
    }

    /// The room a batch takes in the window: its events, or 1 for an empty one, so idle batches are bounded too.
    private static func windowShare(of batch: ReplicationBatch) -> Int { max(1, batch.events.count) }

    /// Completes each batch's delivery in the order read and hands its position to the checkpointer.
    private func acknowledge(_ inFlight: AsyncStream<InFlightBatch>, window: InFlightWindow, progress: AcknowledgedProgress,
                             wake: AsyncStream<Void>.Continuation, control: PostgresConnection) async throws {
        for await item in inFlight {
            let batch = item.batch
            if !batch.events.isEmpty {
                try await fanout.complete(item.submission) { [checkpoints, config] message in
                    await checkpoints.recordError(consumer: config.consumer, message: message, on: control)
                }
                latency.recordCommitLatencies(of: batch.events)
            }
            window.release(Self.windowShare(of: batch))
            progress.acknowledge(batch)
            wake.yield()
            latency.logPeriodically(logger)
        }
    }

    /// Saves the acknowledged position (at most every 5 s when only empty batches moved it), confirms to the
    /// server only what a saved checkpoint holds, and writes heartbeats; once more when acknowledging ends.
    private func checkpoint(_ wakeups: AsyncStream<Void>, progress: AcknowledgedProgress, reader: ReplicationReader,
                            startingAt start: ReplicationPosition, control: PostgresConnection) async throws {
        let clock = ContinuousClock()
        var saved = start
        var lastSave = clock.now
        var lastStatus = clock.now
        var lastHeartbeat = clock.now - .seconds(3600)
        let heartbeat = config.source.replication.heartbeat
        func step(final: Bool) async throws {
            let pending = progress.peek()
            if pending.position != saved, pending.events > 0 || final || clock.now - lastSave > .seconds(5) {
                progress.saved(pending)
                try await checkpoints.save(consumer: config.consumer, position: pending.position,
                                           lastEventPosition: pending.lastEventPosition, deliveredEvents: pending.events, on: control)
                deliveredEvents += pending.events
                saved = pending.position
                lastSave = clock.now
            }
            if let confirmable = pending.confirmable, saved.commitLSN >= confirmable {
                try await reader.confirm(flush: confirmable)
                progress.confirmed(upTo: confirmable)
                lastStatus = clock.now
            } else if clock.now - lastStatus > .seconds(10) {
                try await reader.confirm(flush: saved.index == nil ? saved.commitLSN : .zero)
                lastStatus = clock.now
            }
            if !final, heartbeat > .zero, clock.now - lastHeartbeat > heartbeat {
                _ = try await emitHeartbeat(on: control)
                lastHeartbeat = clock.now
            }
        }
        for await _ in wakeups { try await step(final: false) }
        try await step(final: true)
    }

    /// A non-transactional logical message: it flows through the slot even when no published table changes,
    /// so the confirmed position can follow the WAL. Returns the position the stream gives it.
    private func emitHeartbeat(on connection: PostgresConnection) async throws -> LSN {
        let result = try await connection.query("SELECT pg_logical_emit_message(false, $1, '')::text", [Self.heartbeatPrefix])
        let end = result.first?[0].flatMap { LSN(string: $0) } ?? .zero
        return ReplicationEventBuilder.position(ofNonTransactionalMessageEndingAt: end)
    }
}

/// Runs `body`, reconnecting with backoff after connection failures until it returns or shutdown begins.
/// Configuration and fatal errors end it.
func runReconnecting(logger: Logger, retry: RetryPolicy, database: String, _ body: () async throws -> Void) async throws {
    var failures = 0
    var lastFailure: ContinuousClock.Instant?
    func backoff() -> Duration {
        // A failure long after the previous one starts the backoff over, so a daemon does not wait the
        // maximum delay forever because of an outage days ago.
        if let lastFailure, ContinuousClock.now - lastFailure > .seconds(300) { failures = 0 }
        failures += 1
        lastFailure = .now
        return retry.delay(forAttempt: failures, jitter: Double.random(in: 0.5...1))
    }
    while !Task.isShuttingDownGracefully, !Task.isCancelled {
        do {
            try await body()
            return
        } catch let error as ConfigError {
            throw error
        } catch let error as FatalError {
            throw error
        } catch let error as FatalSourceError {
            throw error
        } catch is DeliveryAbandoned {
            logger.notice("stopped with a batch unacknowledged; it is delivered again on the next start")
            return
        } catch is CancellationError {
            return
        } catch {
            if Task.isShuttingDownGracefully { return }
            let delay = backoff()
            if let failure = error as? PipelinedDeliveryFailed {
                // Later batches may already be written: everything after the checkpoint goes again, in order.
                logger.warning("delivery failed; resuming from the last checkpoint", metadata: [
                    LogKey.sink: "\(failure.sink)", LogKey.error: "\(failure.underlying)", LogKey.attempts: "\(failures)",
                    LogKey.retryIn: "\(delay)",
                ])
            } else {
                logger.error("source failed, reconnecting", metadata: [
                    LogKey.error: "\(error)", LogKey.attempts: "\(failures)", LogKey.retryIn: "\(delay)", LogKey.database: "\(database)",
                ])
            }
            try? await sleepUnlessStopping(delay)
        }
    }
}

/// What the acknowledger has acknowledged and the checkpointer has not saved yet: the latest position, the
/// events since the last save, and the latest position the server may be told is flushed.
final class AcknowledgedProgress: Sendable {
    struct Pending: Sendable {
        var position: ReplicationPosition
        var lastEventPosition: String?
        var events = 0
        var confirmable: LSN?
    }

    private let state: Mutex<Pending>

    init(start: ReplicationPosition) {
        state = Mutex(Pending(position: start))
    }

    func acknowledge(_ batch: ReplicationBatch) {
        state.withLock { pending in
            if let position = batch.position { pending.position = position }
            if let last = batch.events.last { pending.lastEventPosition = last.position }
            pending.events += batch.events.count
            if let confirmable = batch.confirmable { pending.confirmable = max(confirmable, pending.confirmable ?? confirmable) }
        }
    }

    func peek() -> Pending { state.withLock { $0 } }

    /// `snapshot` (from `peek`) is being saved: its events no longer count as pending.
    func saved(_ snapshot: Pending) {
        state.withLock { pending in
            pending.events -= snapshot.events
            if pending.events == 0 { pending.lastEventPosition = nil }
        }
    }

    func confirmed(upTo lsn: LSN) {
        state.withLock { pending in
            if let confirmable = pending.confirmable, confirmable <= lsn { pending.confirmable = nil }
        }
    }
}
