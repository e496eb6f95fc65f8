import Foundation
import Synchronization
import Logging
import SpillwayCore

/// Changes read from the slot, and where the consumer stands once they are acknowledged.
public struct ReplicationBatch: Sendable {
    public var events: [ChangeEvent]
    /// Save this after every sink acknowledged `events` (nil: nothing moved).
    public var position: ReplicationPosition?
    /// The highest LSN the server may forget once `position` is saved: the last complete transaction's
    /// commit LSN, or a heartbeat's when nothing was pending.
    public var confirmable: LSN?
    /// True when no message arrived within the wait: the stream is idle.
    public var isIdle: Bool

    public init(events: [ChangeEvent], position: ReplicationPosition?, confirmable: LSN?, isIdle: Bool) {
        self.events = events
        self.position = position
        self.confirmable = confirmable
        self.isIdle = isIdle
    }
}

/// Reads a logical replication slot with pgoutput over libpq's replication protocol (CopyBoth), decodes it
/// (`PGOutputDecoder`, `ReplicationEventBuilder`), skips what the checkpoint says was acknowledged, and
/// sends standby status updates that confirm only what was checkpointed.
public final class ReplicationReader: @unchecked Sendable {
    // @unchecked Sendable: `next` runs in one task at a time (the pipeline's reader stage);
    // `confirm` may overlap it and touches only the Mutex and the connection, whose queue serialises I/O.
    private let config: SpillwayConfig
    private let stream: PostgresConnection
    private let catalog: PostgresConnection
    private let logger: Logger
    private var decoder = PGOutputDecoder()
    /// A change that cannot be turned into an event, held back until the events before it are returned.
    private var pendingFailure: FatalSourceError?
    private var builder: ReplicationEventBuilder
    private let acknowledged: ReplicationPosition
    /// The newest position the server told us about (keepalives, data).
    public private(set) var serverWALEnd: LSN = .zero
    /// What was last confirmed to the server. A Mutex: the pipeline confirms while the next batch is read.
    private let confirmed: Mutex<LSN>
    public var confirmedFlush: LSN { confirmed.withLock { $0 } }

    public static func open(config: SpillwayConfig, from position: ReplicationPosition, logger: Logger) async throws -> ReplicationReader {
        let catalog = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-catalog")
        let stream: PostgresConnection
        do {
            stream = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-replication", replication: true)
        } catch {
            await catalog.close()
            throw error
        }
        let reader = ReplicationReader(config: config, stream: stream, catalog: catalog, position: position, logger: logger)
        do {
            try await reader.start()
        } catch {
            await reader.close()
            throw error
        }
        return reader
    }

    private init(config: SpillwayConfig, stream: PostgresConnection, catalog: PostgresConnection,
                 position: ReplicationPosition, logger: Logger) {
        self.config = config
        self.stream = stream
        self.catalog = catalog
        self.logger = logger
        self.acknowledged = position
        self.confirmed = Mutex(position.index == nil ? position.commitLSN : .zero)
        let settings = config.source.replication
        builder = ReplicationEventBuilder(options: .init(tenantColumns: settings.tenantColumns,
                                                         defaultTenantColumn: settings.tenantColumn,
                                                         includeMessages: settings.messages))
    }

    private func start() async throws {
        let settings = config.source.replication
        let slot = try await catalog.query("SELECT wal_status, active_pid FROM pg_replication_slots WHERE slot_name = $1", [settings.slot])
        guard let row = slot.first else {
            throw ConfigError(key: "source.slot", problem: "replication slot '\(settings.slot)' does not exist",
                              fix: "run `spillway install --config FILE` (it creates the slot and the publication)")
        }
        if row[0] == "lost" {
            throw FatalSourceError(
                "replication slot '\(settings.slot)' was invalidated by PostgreSQL (wal_status = lost): the WAL it needed is gone, "
                    + "so changes were lost. Recover: `spillway uninstall` and `spillway install` to create a new slot, then "
                    + "re-snapshot the consumers (rebuild the search index or cache from the tables); raise max_slot_wal_keep_size "
                    + "or keep Spillway running to avoid it")
        }
        if let pid = row[1] {
            throw FatalSourceError("replication slot '\(settings.slot)' is in use by process \(pid): another `spillway run` "
                + "(or another client) is reading it")
        }
        // Messages always: heartbeats and `run --once`'s end marker are messages, whatever `source.messages` says
        // (the builder drops other messages when it is off).
        let options = "proto_version '1', publication_names \(SQLText.literal(settings.publication)), messages 'true'"
        // Starting at our own checkpoint is only a floor: the server starts at the slot's confirmed position
        // if that is later, and we skip what the checkpoint covers.
        let start = acknowledged.index == nil ? acknowledged.commitLSN : .zero
        try await stream.startCopyBoth("START_REPLICATION SLOT \(SQLText.identifier(settings.slot)) LOGICAL \(start) (\(options))")
        logger.info("replication started", metadata: ["slot": "\(settings.slot)", "from": "\(acknowledged)"])
    }

    public func close() async {
        await stream.close()
        await catalog.close()
    }

    /// Up to `maximum` events, waiting at most `wait` for the stream to say anything.
    public func next(maximum: Int, wait: Duration) async throws -> ReplicationBatch {
        if let failure = pendingFailure { throw failure }
        var batch = ReplicationBatch(events: [], position: nil, confirmable: nil, isIdle: false)
        var receivedAnything = false
        while batch.events.count < maximum {
            let messages = try await stream.readCopyData(maximum: 2000, timeout: receivedAnything ? .zero : wait)
            if messages.isEmpty { break }
            receivedAnything = true
            for bytes in messages {
                do {
                    try await handle(bytes, into: &batch)
                } catch let failure as FatalSourceError where !batch.events.isEmpty {
                    // Deliver (and checkpoint) what came before the change that cannot be decoded, so the consumer
                    // stops exactly at it; the next call reports it.
                    pendingFailure = failure
                    return batch
                }
            }
        }
        batch.isIdle = !receivedAnything
        return batch
    }

    private func handle(_ bytes: [UInt8], into batch: inout ReplicationBatch) async throws {
        switch try ReplicationStreamMessage(decoding: bytes) {
        case .primaryKeepalive(let keepalive):
            // Only keepalives: everything before their position has been sent to us.
            serverWALEnd = max(serverWALEnd, keepalive.walEnd)
            if keepalive.isReplyRequested { try await sendStatus(flush: confirmedFlush) }
        case .xLogData(let data):
            let message = try decoder.decode(data.payload)
            if case .relation(let relation) = message { try await describe(relation) }
            let outputs: [ReplicationEventBuilder.Output]
            do {
                outputs = try builder.handle(message)
            } catch let error as ReplicationEventBuilder.Error {
                // The same WAL comes again after a reconnect, and with it the same error: retrying cannot help.
                throw FatalSourceError(error.description)
            }
            for output in outputs {
                switch output {
                case .none:
                    break
                case .event(let event, let position):
                    guard !acknowledged.covers(commitLSN: position.commitLSN, index: position.index ?? 0) else { continue }
                    batch.events.append(event)
                    batch.position = position
                case .commit(let commitLSN, _):
                    // The whole transaction is now in this batch or acknowledged before it.
                    if commitLSN >= acknowledged.commitLSN { batch.position = ReplicationPosition(commitLSN: commitLSN) }
                    batch.confirmable = commitLSN
                case .progress(let lsn):
                    if !builder.isInTransaction {
                        batch.position = ReplicationPosition(commitLSN: max(lsn, batch.position?.commitLSN ?? .zero, acknowledged.commitLSN))
                        batch.confirmable = lsn
                    }
                }
            }
        }
    }

    /// Resolves what the builder cannot know from the stream: non-built-in types and the primary key.
    private func describe(_ relation: PGOutputMessage.Relation) async throws {
        // Every Relation message resolves its user types again: a composite may have gained a field since.
        let userTypes = relation.columns.map(\.typeOID).filter { PGTypeKind(builtinOID: $0) == nil }
        if !userTypes.isEmpty {
            for (oid, kind) in try await PostgresCatalog.typeKinds(of: userTypes, on: catalog) {
                builder.register(kind: kind, for: oid)
            }
        }
        let table = QualifiedName(schema: relation.namespace, name: relation.name)
        if try await PostgresCatalog.tableExists(table, on: catalog) {
            builder.register(primaryKey: try await PostgresCatalog.primaryKey(of: table, on: catalog), for: relation.id)
        }
        if let missing = builder.identityLacksPrimaryKey(relation) {
            logger.error("table's replica identity leaves out its primary key: its deletes cannot be keyed and stop the stream", metadata: [
                "table": "\(table)", "missing_key_columns": "\(missing.joined(separator: ","))",
                "fix": "ALTER TABLE \(table.sql) REPLICA IDENTITY FULL",
            ])
        }
    }

    /// Tells the server everything up to `flush` is safe: it may recycle that WAL and will not resend it.
    public func confirm(flush: LSN) async throws {
        let flush = confirmed.withLock { value in
            value = max(value, flush)
            return value
        }
        try await sendStatus(flush: flush)
    }

    private func sendStatus(flush: LSN) async throws {
        let now = PGTimestamp(unixMicroseconds: Int64(Date().timeIntervalSince1970 * 1_000_000)) ?? PGTimestamp(microsecondsSince2000: 0)
        let update = StandbyStatusUpdate(writeLSN: flush, flushLSN: flush, applyLSN: flush, clientClock: now, isReplyRequested: false)
        try await stream.sendCopyData(update.encoded)
    }

    public var isInTransaction: Bool { builder.isInTransaction }
}

/// The source cannot go on without the operator: an invalidated slot, a slot in use.
public struct FatalSourceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
