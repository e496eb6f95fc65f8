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

    private func stream(from reader: ReplicationReader, startingAt start: ReplicationPosition,
                        control: PostgresConnection) async throws {
        let clock = ContinuousClock()
        var position = start
        var savedPosition = start
        var lastSave = clock.now
        var lastStatus = clock.now
        var lastHeartbeat = clock.now - .seconds(3600)
        let heartbeat = config.source.replication.heartbeat
        // `--once` stops at a marker written now: everything committed before it has then been delivered.
        var target: LSN?
        if options.once { target = try await emitHeartbeat(on: control) }

        // One batch is read ahead while the current one is delivered: decoding overlaps the sinks' round
        // trips. Batches still reach the sinks strictly in order, and the checkpoint follows delivery.
        let maximum = config.source.batchSize
        var upcoming: ReplicationBatch? = try await reader.next(maximum: maximum, wait: .milliseconds(250))
        while let batch = upcoming, !Task.isShuttingDownGracefully, !Task.isCancelled {
            async let readAhead = reader.next(maximum: maximum, wait: .milliseconds(250))
            if !batch.events.isEmpty {
                try await fanout.deliver(batch.events) { [checkpoints, config] message in
                    await checkpoints.recordError(consumer: config.consumer, message: message, on: control)
                }
            }
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
            let next = try await readAhead
            // Everything up to the marker is delivered (the position is saved right after the loop). What was
            // read ahead is neither saved nor confirmed, so the slot sends it again next time.
            if let target, batch.events.isEmpty, position.index == nil, position.commitLSN >= target {
                break
            }
            upcoming = next
        }
        if position != savedPosition {
            try await checkpoints.save(consumer: config.consumer, position: position, lastEventPosition: nil, deliveredEvents: 0, on: control)
            if position.index == nil { try await reader.confirm(flush: position.commitLSN) }
        }
        logger.info("stopped", metadata: [LogKey.events: "\(deliveredEvents)"])
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
