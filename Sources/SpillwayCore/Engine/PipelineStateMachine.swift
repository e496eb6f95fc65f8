/// Where a source stands; each source has its own (the audit_log cursor, the replication position). The
/// engine only stores, compares and saves it.
public protocol SourcePosition: Sendable, Equatable, CustomStringConvertible {
    /// True when, once this position is saved, the server may be told it can forget the WAL up to `lsn`
    /// (the replication source's standby status; the audit_log source never confirms anything).
    func allowsConfirming(_ lsn: LSN) -> Bool
}

extension ReplicationPosition: SourcePosition {
    public func allowsConfirming(_ lsn: LSN) -> Bool { commitLSN >= lsn }
}

extension AuditLogCursor: SourcePosition {
    public func allowsConfirming(_ lsn: LSN) -> Bool { false }
}

/// One batch as a source read it.
public struct SourceBatch<Position: SourcePosition>: Sendable {
    public var events: [ChangeEvent]
    /// Where the consumer stands once `events` (and every batch before them) are acknowledged; nil when the
    /// batch moved nothing (an idle wait).
    public var end: Position?
    /// The batch moved past source rows (some may have been no sink's): its end is saved promptly rather
    /// than with the next periodic save.
    public var isProgress: Bool
    /// What the server may forget once `end` is saved (replication: the last complete transaction's commit
    /// LSN, or a heartbeat's).
    public var confirmable: LSN?
    /// `source.outbox.delete_after`: rows to delete in the save that covers this batch (the pipeline's
    /// `OutboxRouter` sets them; sources leave them empty).
    public var outboxRows: [OutboxRow] = []

    public init(events: [ChangeEvent], end: Position?, isProgress: Bool? = nil, confirmable: LSN? = nil) {
        self.events = events
        self.end = end
        self.isProgress = isProgress ?? !events.isEmpty
        self.confirmable = confirmable
    }

    /// Nothing arrived.
    public static var idle: SourceBatch { SourceBatch(events: [], end: nil) }
}

/// The checkpointing decisions of the pipeline engine, for every source: batches are acknowledged strictly
/// in the order they were read; the checkpoint moves to the latest acknowledged position, in saves that
/// coalesce however many batches were acknowledged meanwhile; the server is told it may forget WAL only
/// up to what a saved checkpoint covers. Pure and generic over the clock's instant, so the rules are tested
/// without sockets or sleeps (postgres-nio's `PoolStateMachine` is the model).
public struct PipelineStateMachine<Position: SourcePosition, Instant: InstantProtocol>: Sendable
where Instant.Duration == Duration {
    /// What one save writes.
    public struct Checkpoint: Sendable, Equatable {
        public var position: Position
        /// The `position` of the last acknowledged event, for `status` (nil: unchanged).
        public var lastEventPosition: String?
        /// Events acknowledged since the previous save.
        public var events: Int
        /// Outbox rows of the batches acknowledged since the previous save, deleted by the save itself.
        public var outboxRows: [OutboxRow] = []
    }

    /// Empty moves (idle snapshots, heartbeats) are saved at most this often: each save is a transaction,
    /// which itself moves the next audit snapshot, so saving every one would spin.
    public var idleSaveInterval: Duration = .seconds(5)
    /// Without anything to confirm, a standby status is still sent this often (the server's
    /// `wal_sender_timeout` must not fire while the stream is quiet).
    public var statusInterval: Duration = .seconds(10)

    public private(set) var saved: Position
    private var acknowledged: Position
    private var lastEventPosition: String?
    private var unsavedEvents = 0
    private var unsavedOutboxRows: [OutboxRow] = []
    private var hasUnsavedProgress = false
    private var confirmable: LSN?
    private var lastSave: Instant
    private var lastStatus: Instant
    /// Batches read and not yet acknowledged, in read order (their sequence numbers).
    private var inFlight: [UInt64] = []
    private var nextSequence: UInt64 = 0

    public init(start: Position, now: Instant) {
        saved = start
        acknowledged = start
        lastSave = now
        lastStatus = now
    }

    // MARK: Reading and acknowledging

    /// A batch was read and handed to the sinks; returns its sequence number, which `acknowledge` takes.
    public mutating func read() -> UInt64 {
        defer { nextSequence += 1 }
        inFlight.append(nextSequence)
        return nextSequence
    }

    public var batchesInFlight: Int { inFlight.count }

    public enum AcknowledgementError: Error, Equatable {
        /// Batches complete in read order; a later one finishing first would let the checkpoint pass an
        /// earlier batch that no sink has yet.
        case outOfOrder(expected: UInt64?, got: UInt64)
    }

    /// Every sink acknowledged batch `sequence` (and, by the order rule, every batch before it).
    public mutating func acknowledge(_ sequence: UInt64, _ batch: SourceBatch<Position>) throws(AcknowledgementError) {
        guard inFlight.first == sequence else { throw .outOfOrder(expected: inFlight.first, got: sequence) }
        inFlight.removeFirst()
        if let end = batch.end { acknowledged = end }
        if let last = batch.events.last { lastEventPosition = last.position }
        unsavedEvents += batch.events.count
        unsavedOutboxRows += batch.outboxRows
        if batch.isProgress { hasUnsavedProgress = true }
        if let lsn = batch.confirmable { confirmable = max(lsn, confirmable ?? lsn) }
    }

    // MARK: Saving and confirming

    /// What to save now, if anything. `isFinal`: the pipeline is stopping, so whatever moved is saved.
    /// The caller saves it, then reports `saved(_:now:)`; acknowledgements may arrive in between.
    public func checkpointDue(now: Instant, isFinal: Bool) -> Checkpoint? {
        guard acknowledged != saved else { return nil }
        guard hasUnsavedProgress || unsavedEvents > 0 || isFinal || lastSave.duration(to: now) >= idleSaveInterval else { return nil }
        return Checkpoint(position: acknowledged, lastEventPosition: lastEventPosition, events: unsavedEvents,
                          outboxRows: unsavedOutboxRows)
    }

    /// `checkpoint` (from `checkpointDue`) is saved. Returns the LSN to confirm to the server, if the saved
    /// position now allows one.
    @discardableResult
    public mutating func saved(_ checkpoint: Checkpoint, now: Instant) -> LSN? {
        saved = checkpoint.position
        lastSave = now
        unsavedEvents -= checkpoint.events
        // Rows acknowledged while the save ran stay for the next one.
        unsavedOutboxRows.removeFirst(min(checkpoint.outboxRows.count, unsavedOutboxRows.count))
        if unsavedEvents == 0 { lastEventPosition = nil }
        if acknowledged == checkpoint.position { hasUnsavedProgress = false }
        return confirmationDue(now: now)
    }

    /// The LSN the server may forget now (the saved position covers it), if any.
    public func confirmationDue(now: Instant) -> LSN? {
        guard let confirmable, saved.allowsConfirming(confirmable) else { return nil }
        return confirmable
    }

    public mutating func confirmed(_ lsn: LSN, now: Instant) {
        if let confirmable, confirmable <= lsn { self.confirmable = nil }
        lastStatus = now
    }

    /// True when a standby status should be sent although nothing new is confirmable.
    public func statusDue(now: Instant) -> Bool { lastStatus.duration(to: now) >= statusInterval }

    public mutating func statusSent(now: Instant) { lastStatus = now }
}

/// Backoff between reconnects of a failing session: attempts count up with each failure, and start over
/// when the previous failure is long past (a daemon must not wait the maximum delay forever because of an
/// outage days ago).
public struct ReconnectBackoff<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    public let policy: RetryPolicy
    /// A failure this long after the previous one counts as the first again. Default: 5 minutes.
    public var quietPeriod: Duration = .seconds(300)
    public private(set) var attempts = 0
    private var lastFailure: Instant?

    public init(policy: RetryPolicy) {
        self.policy = policy
    }

    /// Records a failure at `now`; returns the delay before the next attempt (`jitter` in [0, 1]).
    public mutating func failed(at now: Instant, jitter: Double) -> Duration {
        if let lastFailure, lastFailure.duration(to: now) >= quietPeriod { attempts = 0 }
        attempts += 1
        lastFailure = now
        return policy.delay(forAttempt: attempts, jitter: jitter)
    }
}

/// Something done every `interval` (a heartbeat, retention pruning).
public struct PeriodicTask<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    public let interval: Duration
    private var last: Instant?

    /// `runsImmediately`: due at once, rather than an interval after `now`.
    public init(every interval: Duration, startingAt now: Instant, runsImmediately: Bool = false) {
        self.interval = interval
        self.last = runsImmediately ? nil : now
    }

    /// True (and rescheduled) when due at `now`; never for a zero interval (turned off).
    public mutating func isDue(at now: Instant) -> Bool {
        guard interval > .zero else { return false }
        if let last, last.duration(to: now) < interval { return false }
        last = now
        return true
    }
}
