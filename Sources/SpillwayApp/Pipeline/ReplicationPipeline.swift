import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres

/// The replication daemon: read the slot, hand each batch to every sink, checkpoint, and only then confirm
/// the position to the server. A heartbeat message keeps an idle slot's confirmed position moving.
public final class ReplicationPipeline: Service, @unchecked Sendable {
    // @unchecked Sendable: the statistics are written only by `run()`'s own task.
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
        try await withConsumerSession(config) { control, record in
            let reader = try await ReplicationReader.open(config: config, from: record.replicationPosition, logger: logger)
            do {
                try await fanout.validate(capturing: config, on: control)
                try await stream(from: reader, startingAt: record.replicationPosition, control: control)
            } catch {
                await reader.close()
                throw error
            }
            await reader.close()
        }
    }

    /// A batch read from the slot and already handed to the pipelined sinks.
    private struct InFlightBatch: Sendable {
        var batch: ReplicationBatch
        var submission: FanoutSubmission
    }

    /// Two stages: a reader that takes batches from the slot and hands them to the pipelined sinks as fast
    /// as the window allows, and a checkpointer that completes each batch's delivery in order, then saves and
    /// confirms its position. Up to `source.max_in_flight_batches` batches are between the two, so a
    /// Kafka cluster's round trip overlaps the next batches instead of stalling the stream.
    private func stream(from reader: ReplicationReader, startingAt start: ReplicationPosition,
                        control: PostgresConnection) async throws {
        // `--once` stops at a marker written now: everything committed before it has then been delivered.
        let target: LSN? = options.once ? try await emitHeartbeat(on: control) : nil
        let window = InFlightWindow(limit: config.source.maxInFlightBatches)
        let (inFlight, submitted) = AsyncStream.makeStream(of: InFlightBatch.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                defer { submitted.finish() }
                try await readAndSubmit(from: reader, startingAt: start, until: target, window: window, into: submitted)
            }
            do {
                defer { window.close() }  // nothing is released any more: a reader waiting for room stops
                try await acknowledgeAndCheckpoint(inFlight, reader: reader, startingAt: start, window: window, control: control)
            } catch {
                group.cancelAll()
                throw error
            }
            try await group.waitForAll()
        }
        logger.info("stopped", metadata: [LogKey.events: "\(deliveredEvents)"])
    }

    /// Decoding the next batch overlaps handing the current one to the sinks (building Kafka records costs
    /// about as much as decoding), so the reader reads one batch ahead, within the window.
    private func readAndSubmit(from reader: ReplicationReader, startingAt start: ReplicationPosition, until target: LSN?,
                               window: InFlightWindow, into submitted: AsyncStream<InFlightBatch>.Continuation) async throws {
        let maximum = config.source.batchSize
        @Sendable func read() async throws -> ReplicationBatch {
            try await window.acquire()
            return try await reader.next(maximum: maximum, wait: .milliseconds(250))
        }
        var position = start
        var batch = try await read()
        while true {
            if let next = batch.position { position = next }
            // Everything up to the marker is read; the checkpointer saves it once delivered. Nothing after it
            // is read, so nothing is left unconfirmed for the slot to send again.
            let reachedTarget = target.map { batch.events.isEmpty && position.index == nil && position.commitLSN >= $0 } ?? false
            let readsOn = !reachedTarget && !Task.isShuttingDownGracefully && !Task.isCancelled
            async let upcoming = readsOn ? read() : nil
            let submission = batch.events.isEmpty ? FanoutSubmission.empty : try await fanout.submit(batch.events)
            submitted.yield(InFlightBatch(batch: batch, submission: submission))
            guard let next = try await upcoming else { return }
            batch = next
        }
    }

    private func acknowledgeAndCheckpoint(_ inFlight: AsyncStream<InFlightBatch>, reader: ReplicationReader,
                                          startingAt start: ReplicationPosition, window: InFlightWindow,
                                          control: PostgresConnection) async throws {
        let clock = ContinuousClock()
        var position = start
        var savedPosition = start
        var lastSave = clock.now
        var lastStatus = clock.now
        var lastHeartbeat = clock.now - .seconds(3600)
        let heartbeat = config.source.replication.heartbeat
        for await item in inFlight {
            let batch = item.batch
            if !batch.events.isEmpty {
                try await fanout.complete(item.submission) { [checkpoints, config] message in
                    await checkpoints.recordError(consumer: config.consumer, message: message, on: control)
                }
                latency.recordCommitLatencies(of: batch.events)
            }
            window.release()
            if let next = batch.position { position = next }
            if position != savedPosition, !batch.events.isEmpty || clock.now - lastSave > .seconds(5) {
                try await checkpoints.save(consumer: config.consumer, position: position, lastEventPosition: batch.events.last?.position,
                                           deliveredEvents: batch.events.count, on: control)
                deliveredEvents += batch.events.count
                savedPosition = position
                lastSave = clock.now
            }
            // Confirm to the server only what the checkpoint holds.
            if let confirmable = batch.confirmable, savedPosition.commitLSN >= confirmable {
                try await reader.confirm(flush: confirmable)
                lastStatus = clock.now
            } else if clock.now - lastStatus > .seconds(10) {
                try await reader.confirm(flush: savedPosition.index == nil ? savedPosition.commitLSN : .zero)
                lastStatus = clock.now
            }
            if heartbeat > .zero, clock.now - lastHeartbeat > heartbeat {
                _ = try await emitHeartbeat(on: control)
                lastHeartbeat = clock.now
            }
            latency.logPeriodically(logger)
        }
        if position != savedPosition {
            try await checkpoints.save(consumer: config.consumer, position: position, lastEventPosition: nil, deliveredEvents: 0, on: control)
            if position.index == nil { try await reader.confirm(flush: position.commitLSN) }
        }
    }

    /// A non-transactional logical message: it flows through the slot even when no published table changes,
    /// so the confirmed position can follow the WAL. Returns its LSN.
    private func emitHeartbeat(on connection: PostgresConnection) async throws -> LSN {
        let result = try await connection.query("SELECT pg_logical_emit_message(false, $1, '')::text", [Self.heartbeatPrefix])
        return result.first?[0].flatMap { LSN(string: $0) } ?? .zero
    }
}

/// Runs `body`, reconnecting with backoff after connection failures until it returns or shutdown begins.
/// Configuration and fatal errors end it.
func runReconnecting(logger: Logger, retry: RetryPolicy, database: String, _ body: () async throws -> Void) async throws {
    var failures = 0
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
        } catch let failure as PipelinedDeliveryFailed {
            // Later batches may already be written: everything after the checkpoint goes again, in order.
            if Task.isShuttingDownGracefully { return }
            failures += 1
            let delay = retry.delay(forAttempt: failures, jitter: Double.random(in: 0.5...1))
            logger.warning("delivery failed; resuming from the last checkpoint", metadata: [
                LogKey.sink: "\(failure.sink)", LogKey.error: "\(failure.underlying)", LogKey.attempts: "\(failures)",
                LogKey.retryIn: "\(delay)",
            ])
            try? await sleepUnlessStopping(delay)
        } catch is DeliveryAbandoned {
            logger.notice("stopped with a batch unacknowledged; it is delivered again on the next start")
            return
        } catch is CancellationError {
            return
        } catch {
            if Task.isShuttingDownGracefully { return }
            failures += 1
            let delay = retry.delay(forAttempt: failures, jitter: Double.random(in: 0.5...1))
            logger.error("source failed, reconnecting", metadata: [
                LogKey.error: "\(error)", LogKey.attempts: "\(failures)", LogKey.retryIn: "\(delay)", LogKey.database: "\(database)",
            ])
            try? await sleepUnlessStopping(delay)
        }
    }
}
