import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres
import Synchronization

/// A fatal condition: retrying cannot help, the operator must act. `spillway run` exits non-zero on it.
public struct FatalError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The one pipeline engine, for every source: read batches from the source, hand each to every sink,
/// checkpoint once all acknowledged, and only then confirm to the server what the checkpoint covers.
///
/// Three stages run concurrently: a reader that takes batches from the source and hands them to the sinks
/// (pipelined sinks only queue them) as fast as the window allows; an acknowledger that completes each
/// batch's delivery, in read order; and a checkpointer that saves the latest acknowledged position whenever
/// its previous save is done (`PipelineStateMachine` decides). Up to `source.max_in_flight_batches` full
/// batches' worth of events are between reader and acknowledger, so a sink's round trip overlaps reading
/// the next batches, and a save (a commit with its WAL flush) never holds up acknowledgements.
///
/// Failures (one rule, README's Guarantees): a sink that takes one batch at a time retries that batch in
/// place with backoff, so nothing later reaches it first; a pipelined sink's failed acknowledgement — later
/// batches may already be written — and a lost source connection end the session, which starts again from
/// the checkpoint, with backoff. Configuration errors and fatal source errors end `run`.
public final class ChangePipeline<Source: ChangeSource>: Service, @unchecked Sendable {
    // @unchecked Sendable: `deliveredEvents` is written only by the checkpointer stage (run()'s own task),
    // `latency` only by the acknowledger stage, and both are read after those stages ended.
    public typealias OpenSource = @Sendable (_ record: CheckpointRecord, _ control: PostgresConnection, _ logger: Logger) async throws -> Source

    private let config: SpillwayConfig
    private let fanout: Fanout
    private let options: PipelineOptions
    private let logger: Logger
    private let openSource: OpenSource
    /// `source.tables[].columns` and `.mask`, applied to every batch before any sink (or a sink's `where`)
    /// sees it.
    private let masker: ColumnMasker
    /// `source.outbox`: routes outbox inserts and drops the outbox tables' other changes, after masking.
    private let router: OutboxRouter
    public private(set) var deliveredEvents = 0
    private var latency = DeliveryLatencyLog()

    public init(config: SpillwayConfig, fanout: Fanout, options: PipelineOptions = .init(), logger: Logger,
                openSource: @escaping OpenSource) {
        self.config = config
        self.fanout = fanout
        self.options = options
        var logger = logger
        logger[metadataKey: LogKey.consumer] = "\(config.consumer)"
        self.logger = logger
        self.openSource = openSource
        masker = ColumnMasking.masker(for: config.source)
        router = OutboxRouter(config.source.outbox)
    }

    public func run() async throws {
        defer {
            fanout.monitor?.stopped()
            latency.logSummary(logger)
        }
        guard let backoff = options.once ? nil : config.source.idleBackoff else {
            try await runSessions(idleAfter: nil)
            return
        }
        // `source.idle_backoff`: a session that finds nothing for `after` ends, with every connection; the next
        // one starts after a pause that doubles, up to the maximum, while each finds nothing at once.
        var pause = config.source.pollInterval
        var idleAfter = backoff.after
        while true {
            let delivered = deliveredEvents
            guard try await runSessions(idleAfter: idleAfter, untilProgress: backoff.after) else { return }
            if deliveredEvents > delivered { pause = config.source.pollInterval }
            logger.info("idle: every connection closed until the next poll", metadata: ["next_poll_in": "\(pause)"])
            let clock = ContinuousClock()
            let wake = clock.now + pause
            while clock.now < wake, !Task.isShuttingDownGracefully {
                fanout.monitor?.tick()  // idle, not stuck: /healthz stays up
                try await sleepUnlessStopping(min(.seconds(10), wake - clock.now))
            }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            pause = min(pause * 2, backoff.maximum)
            idleAfter = .zero
        }
    }

    /// Runs consumer sessions, reconnecting after failures, until one ends. True when it ended because
    /// nothing new came for `idleAfter` (`untilProgress` once a change came).
    @discardableResult
    private func runSessions(idleAfter: Duration?, untilProgress: Duration? = nil) async throws -> Bool {
        let idled = IdleFlag()
        try await runReconnecting(logger: logger, retry: options.retry, database: config.database.redactedURL,
                                  onFailure: { [fanout] in fanout.monitor?.sessionFailed() }) {
            try await withSession { control, record in
                // A missing outbox table or column is a config error naming source.outbox, not source.tables[N].
                try await OutboxCatalog.verify(config, on: control, checkingGrants: !options.isDetached)
                let source = try await openSource(record, control, logger)
                do {
                    try await fanout.validate(capturing: config, on: control)
                    fanout.monitor?.sessionStarted()
                    try await stream(from: source, idle: idleAfter.map { IdleRule(first: $0, afterProgress: untilProgress ?? $0, flag: idled) })
                } catch {
                    await source.close()
                    throw error
                }
                await source.close()
            }
        }
        return idled.isSet
    }

    /// The consumer's session (its lock and checkpoint), or, detached, a plain connection.
    private func withSession(_ body: (PostgresConnection, CheckpointRecord) async throws -> Void) async throws {
        guard options.isDetached else {
            try await withConsumerSession(config, logger: logger, isStandbyAllowed: !options.once,
                                          onStandby: { [fanout] in fanout.monitor?.standby() }, body)
            return
        }
        try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-replay") { control in
            try await body(control, CheckpointRecord(consumer: config.consumer, source: config.source.kind.rawValue, cursor: AuditLogCursor(),
                                                     eventsTotal: 0, replicationPosition: .start))
        }
    }

    /// When a session gives up its connections for being idle: after `first` without a change, or `afterProgress`
    /// once a change came.
    private struct IdleRule: Sendable {
        var first: Duration
        var afterProgress: Duration
        var flag: IdleFlag
    }

    private final class IdleFlag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// A batch read from the source and already handed to the pipelined sinks.
    private struct InFlightBatch: Sendable {
        var sequence: UInt64
        var batch: SourceBatch<Source.Position>
        var submission: FanoutSubmission
    }

    private typealias StateMachine = PipelineStateMachine<Source.Position, ContinuousClock.Instant>

    /// The state machine, shared by the three stages.
    private final class SharedStateMachine: Sendable {
        private let mutex: Mutex<StateMachine>
        init(_ machine: StateMachine) { mutex = Mutex(machine) }
        @discardableResult
        func withLock<R: Sendable, E: Error>(_ body: (inout StateMachine) throws(E) -> R) throws(E) -> R {
            try mutex.withLock { (machine) throws(E) -> R in try body(&machine) }
        }
    }

    private func stream(from source: Source, idle: IdleRule? = nil) async throws {
        let clock = ContinuousClock()
        var machine = StateMachine(start: source.start, now: clock.now)
        machine.statusInterval = source.statusInterval
        let state = SharedStateMachine(machine)
        let tick = min(.seconds(1), machine.statusInterval / 2)
        let window = InFlightWindow(limit: config.source.inFlightEventLimit)
        let (inFlight, submitted) = AsyncStream.makeStream(of: InFlightBatch.self)
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        fanout.resumePipelinedSinks()  // this session sends everything after the checkpoint again, in order
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                defer { submitted.finish() }
                try await read(from: source, state: state, window: window, into: submitted, idle: idle)
            }
            group.addTask { [self] in
                defer {
                    window.close()  // nothing is released any more: a reader waiting for room stops
                    wake.finish()
                }
                try await acknowledge(inFlight, source: source, state: state, window: window, wake: wake)
            }
            do {
                try await withThrowingTaskGroup(of: Void.self) { ticker in
                    // Acknowledgements wake the checkpointer; while a sink stalls none come, the window fills and
                    // the reader stops reading, yet the server must still get status updates (or it ends the
                    // replication connection after wal_sender_timeout) and periodic work must still run.
                    ticker.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: tick)
                            wake.yield()
                        }
                    }
                    defer { ticker.cancelAll() }
                    try await checkpoint(wakeups, source: source, state: state, clock: clock)
                }
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

    /// Reads batches and hands each to the pipelined sinks (which only queue it), taking room in the window
    /// for each before it goes on.
    private func read(from source: Source, state: SharedStateMachine, window: InFlightWindow,
                      into submitted: AsyncStream<InFlightBatch>.Continuation, idle: IdleRule?) async throws {
        var position = source.start
        let clock = ContinuousClock()
        var lastProgress = clock.now
        var sawProgress = false
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            guard var batch = try await source.next(after: position, maximum: config.source.batchSize, wait: .milliseconds(250)) else {
                return
            }
            if let idle {
                if batch.isProgress || !batch.events.isEmpty {
                    lastProgress = clock.now
                    sawProgress = true
                } else if clock.now - lastProgress >= (sawProgress ? idle.afterProgress : idle.first) {
                    // Ends the stream as `--once` does: what is in flight is acknowledged and checkpointed first.
                    idle.flag.set()
                    return
                }
            }
            fanout.monitor?.tick()
            var events = masker.apply(batch.events)
            if !router.isEmpty {
                // Before the window takes its share (released by the routed count). The checkpoint that covers
                // this batch deletes its outbox rows (delete_after).
                (events, batch.outboxRows) = router.route(events, keys: batch.events)
                batch.events = events
            }
            try await window.acquire(Self.windowShare(of: batch))
            let submission = events.isEmpty ? FanoutSubmission.empty : try await fanout.submit(events)
            fanout.monitor?.read(batch.events)
            let sequence = state.withLock { $0.read() }
            submitted.yield(InFlightBatch(sequence: sequence, batch: batch, submission: submission))
            if let end = batch.end { position = end }
        }
    }

    /// The room a batch takes in the window: its events, or 1 for an empty one, so idle batches are bounded too.
    private static func windowShare(of batch: SourceBatch<Source.Position>) -> Int { max(1, batch.events.count) }

    /// Completes each batch's delivery in the order read and tells the state machine.
    private func acknowledge(_ inFlight: AsyncStream<InFlightBatch>, source: Source, state: SharedStateMachine,
                             window: InFlightWindow, wake: AsyncStream<Void>.Continuation) async throws {
        for await item in inFlight {
            if !item.batch.events.isEmpty {
                try await fanout.complete(item.submission) { message in await source.recordError(message) }
                latency.recordCommitLatencies(of: item.batch.events)
            }
            fanout.monitor?.acknowledged(item.batch.events)
            window.release(Self.windowShare(of: item.batch))
            try state.withLock { try $0.acknowledge(item.sequence, item.batch) }
            wake.yield()
            latency.logPeriodically(logger)
        }
    }

    /// Saves what the state machine says is due, confirms what the saved position allows, and runs the
    /// source's periodic work; once more, as the final step, when acknowledging ends.
    private func checkpoint(_ wakeups: AsyncStream<Void>, source: Source, state: SharedStateMachine,
                            clock: ContinuousClock) async throws {
        func step(isFinal: Bool) async throws {
            if let due = state.withLock({ $0.checkpointDue(now: clock.now, isFinal: isFinal) }) {
                try await source.save(due.position, lastEventPosition: due.lastEventPosition, events: due.events, outboxRows: due.outboxRows)
                deliveredEvents += due.events
                state.withLock { $0.saved(due, now: clock.now) }
            }
            if let lsn = state.withLock({ $0.confirmationDue(now: clock.now) }) {
                try await source.confirm(lsn)
                state.withLock { $0.confirmed(lsn, now: clock.now) }
            } else if state.withLock({ $0.statusDue(now: clock.now) }) {
                try await source.confirm(nil)
                state.withLock { $0.statusSent(now: clock.now) }
            }
            try await source.maintain(isFinal: isFinal)
        }
        for await _ in wakeups { try await step(isFinal: false) }
        try await step(isFinal: true)
    }
}

/// Runs `body`, reconnecting with backoff after connection failures until it returns or shutdown begins.
/// Configuration and fatal errors end it.
/// `onFailure` hears each failed session that is retried.
func runReconnecting(logger: Logger, retry: RetryPolicy, database: String, onFailure: () -> Void = {},
                     _ body: () async throws -> Void) async throws {
    var backoff = ReconnectBackoff<ContinuousClock.Instant>(policy: retry)
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
            onFailure()
            let delay = backoff.failed(at: .now, jitter: Double.random(in: 0.5...1))
            if let failure = error as? PipelinedDeliveryFailed {
                // Later batches may already be written: everything after the checkpoint goes again, in order.
                logger.warning("delivery failed; resuming from the last checkpoint", metadata: [
                    LogKey.sink: "\(failure.sink)", LogKey.error: "\(failure.underlying)", LogKey.attempts: "\(backoff.attempts)",
                    LogKey.retryIn: "\(delay)",
                ])
            } else {
                logger.error("source failed, reconnecting", metadata: [
                    LogKey.error: "\(error)", LogKey.attempts: "\(backoff.attempts)", LogKey.retryIn: "\(delay)",
                    LogKey.database: "\(database)",
                ])
            }
            try? await sleepUnlessStopping(delay)
        }
    }
}

/// Opens the consumer's control connection, takes its advisory lock and loads its checkpoint, runs `body`,
/// and closes the connection (the lock goes with it) however `body` ends.
///
/// Hot standby: while another runner holds the lock, this one waits on its control connection, up to
/// `ha.takeover` at a time (`lock_timeout`), telling `onStandby` at each wait; PostgreSQL grants the lock
/// the moment the active runner's session ends. Server-side TCP keepalives of about `ha.takeover` end a
/// session whose client vanished without closing it (a cut network). Checkpoint saves check, in their own
/// statement, that this session still holds the lock (`CheckpointStore`), so two runners never both write.
///
/// `isStandbyAllowed` false (`run --once`): a consumer active elsewhere is an error instead, after a few tries
/// (a runner that just stopped may hold the lock a moment longer: its server process ends after the close).
func withConsumerSession(_ config: SpillwayConfig, logger: Logger, isStandbyAllowed: Bool = true, onStandby: () -> Void = {},
                         _ body: (PostgresConnection, CheckpointRecord) async throws -> Void) async throws {
    // The server ends a silent session, and so frees its lock, about `ha.takeover` after its client went; the
    // client notices as soon and stops acting as the active runner.
    try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-checkpoint",
                                                timeouts: config.ha.networkTimeouts) { control in
        let lockName = CheckpointStore.lockName(consumer: config.consumer)
        var attempt = 0
        while !isStandbyAllowed, try await control.query("SELECT pg_try_advisory_lock(hashtext($1))", [lockName]).first?[0] != "t" {
            attempt += 1
            guard attempt < 5 else {
                throw FatalError("consumer '\(config.consumer)' is already running elsewhere (it holds its advisory lock). "
                    + "Stop the other `spillway run`, or give this one another `consumer:` name")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        if isStandbyAllowed, try await control.query("SELECT pg_try_advisory_lock(hashtext($1))", [lockName]).first?[0] != "t" {
            logger.notice("standby: another runner of this consumer is active; waiting to take over", metadata: [
                LogKey.consumer: "\(config.consumer)",
            ])
            try await control.execute("SET lock_timeout = '\(config.ha.takeover.components.seconds * 1000 + config.ha.takeover.components.attoseconds / 1_000_000_000_000_000)ms'")
            while true {
                onStandby()
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                do {
                    _ = try await control.query("SELECT pg_advisory_lock(hashtext($1))", [lockName])
                    break
                } catch let error as PostgresError where error.sqlState == "55P03" {
                    continue  // lock_timeout: still taken; look at shutdown and wait again
                }
            }
            try await control.execute("SET lock_timeout = 0")
            logger.notice("active: took over the consumer", metadata: [LogKey.consumer: "\(config.consumer)"])
        }
        // Released explicitly, so the next runner (a standby, the demo's second pass, a restart) need not wait
        // for this connection's server process to end after the close.
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
