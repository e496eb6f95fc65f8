import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres

/// A fatal condition: retrying cannot help, the operator must act. `spillway run` exits non-zero on it.
public struct FatalError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The audit_log daemon: read a batch, hand it to every sink, checkpoint once all acknowledged, repeat.
/// Connection failures are retried with backoff (the checkpoint holds meanwhile); configuration problems
/// and a second runner of the same consumer are fatal.
public final class AuditLogPipeline: Service, @unchecked Sendable {
    // @unchecked Sendable: the mutable statistics are written only by `run()`'s own task.
    private let config: SpillwayConfig
    private let fanout: Fanout
    private let options: PipelineOptions
    private var logger: Logger
    private let checkpoints: CheckpointStore
    public private(set) var deliveredEvents = 0
    private var latency = DeliveryLatencyLog()

    public init(config: SpillwayConfig, fanout: Fanout, options: PipelineOptions = PipelineOptions(), logger: Logger) {
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
        try await withSourceSession(config, fanout: fanout) { _ in
            try await AuditLogReader.open(config: config, logger: logger)
        } close: { reader in
            await reader.close()
        } body: { reader, control, record in
            try await stream(from: reader, startingAt: record, control: control)
        }
    }

    private func stream(from reader: AuditLogReader, startingAt record: CheckpointRecord,
                        control: PostgresConnection) async throws {
        logger.info("reading", metadata: [LogKey.position: "\(record.position ?? "start")"])
        let retention = AuditLogRetention(schema: config.schema, auditTable: AuditLogSchema(config: config).auditTable)
        var cursor = record.cursor
        var savedCursor = cursor
        let clock = ContinuousClock()
        var lastSave = clock.now
        var lastPrune = clock.now - .seconds(3600)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            guard let batch = try await reader.next(after: cursor, limit: config.source.batchSize) else {
                if options.once { break }
                try await waitForCommits(reader)
                continue
            }
            if !batch.events.isEmpty {
                try await fanout.deliver(batch.events) { [checkpoints, config] message in
                    await checkpoints.recordError(consumer: config.consumer, message: message, on: control)
                }
                latency.recordCommitLatencies(of: batch.events)
            }
            cursor = batch.cursor
            // Empty snapshot advances are saved at most every few seconds: each save is itself a transaction
            // that moves the next snapshot, and saving every one would spin.
            if batch.rowsRead > 0 || clock.now - lastSave > .seconds(5) {
                try await checkpoints.save(consumer: config.consumer, cursor: cursor, position: batch.events.last?.position,
                                           deliveredEvents: batch.events.count, on: control)
                savedCursor = cursor
                lastSave = clock.now
                deliveredEvents += batch.events.count
                if let last = batch.events.last {
                    logger.debug("checkpoint saved", metadata: [LogKey.position: "\(last.position)", LogKey.events: "\(batch.events.count)"])
                }
            }
            latency.logPeriodically(logger)
            if config.source.prune, clock.now - lastPrune > .seconds(60) {
                lastPrune = clock.now
                let deleted = try await retention.prune(on: control)
                if deleted > 0 { logger.info("pruned audit rows every consumer has passed", metadata: ["rows": "\(deleted)"]) }
            }
            if batch.rowsRead == 0, batch.completedSnapshot {
                if options.once { break }
                try await waitForCommits(reader)
            }
        }
        if savedCursor != cursor {
            try await checkpoints.save(consumer: config.consumer, cursor: cursor, position: nil, deliveredEvents: 0, on: control)
        }
        logger.info("stopped", metadata: [LogKey.events: "\(deliveredEvents)"])
    }

    /// Until a NOTIFY says a transaction committed, or the poll interval passes, or shutdown begins.
    private func waitForCommits(_ reader: AuditLogReader) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + config.source.pollInterval
        while clock.now < deadline, !Task.isShuttingDownGracefully {
            if try await reader.waitForCommits(timeout: min(.milliseconds(250), deadline - clock.now)) { return }
        }
    }
}

/// A consumer session (`withConsumerSession`) with the source's reader open and the sinks validated against
/// the captured tables: runs `body`, and closes the reader however it ends.
func withSourceSession<Reader: Sendable>(
    _ config: SpillwayConfig, fanout: Fanout,
    open: (CheckpointRecord) async throws -> Reader, close: (Reader) async -> Void,
    body: (Reader, PostgresConnection, CheckpointRecord) async throws -> Void
) async throws {
    try await withConsumerSession(config) { control, record in
        let reader = try await open(record)
        do {
            try await fanout.validate(capturing: config, on: control)
            try await body(reader, control, record)
        } catch {
            await close(reader)
            throw error
        }
        await close(reader)
    }
}

/// Opens the consumer's control connection, takes its advisory lock (one runner per consumer) and loads its
/// checkpoint, runs `body`, and closes the connection (the lock goes with it) however `body` ends.
func withConsumerSession(_ config: SpillwayConfig,
                         _ body: (PostgresConnection, CheckpointRecord) async throws -> Void) async throws {
    try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-checkpoint") { control in
        let lockName = "spillway-consumer:\(config.consumer)"
        // A runner that just stopped may still hold the lock for a moment: its server process ends after
        // the client closed the connection. So a few tries before calling the consumer taken.
        var attempt = 0
        while try await control.query("SELECT pg_try_advisory_lock(hashtext($1))", [lockName]).first?[0] != "t" {
            attempt += 1
            guard attempt < 5 else {
                throw FatalError("consumer '\(config.consumer)' is already running elsewhere (it holds its advisory lock). "
                    + "Stop the other `spillway run`, or give this one another `consumer:` name")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        // Released explicitly, so the next runner (the demo's second pass, a restart) need not wait for this
        // connection's server process to end after the close.
        func unlock() async { _ = try? await control.query("SELECT pg_advisory_unlock(hashtext($1))", [lockName]) }
        do {
            guard try await PostgresCatalog.tableExists(QualifiedName(schema: config.schema, name: "checkpoints"), on: control),
                  let record = try await CheckpointStore(schema: config.schema).load(consumer: config.consumer, on: control)
            else {
                throw ConfigError(key: "consumer", problem: "consumer '\(config.consumer)' is not installed in schema '\(config.schema)'",
                                  fix: "run `spillway install --config FILE` first")
            }
            try await body(control, record)
        } catch {
            await unlock()
            throw error
        }
        await unlock()
    }
}
