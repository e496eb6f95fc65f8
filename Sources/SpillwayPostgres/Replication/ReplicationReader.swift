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
    /// The batch ends at the message `next` was asked to stop at (everything before it is in the batch).
    public var reachedStop = false

    public init(events: [ChangeEvent], position: ReplicationPosition?, confirmable: LSN?) {
        self.events = events
        self.position = position
        self.confirmable = confirmable
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
    /// The server's `wal_sender_timeout` for this consumer's database and role (nil: 0, never times out):
    /// without a status update for that long, the server ends the stream.
    public private(set) var serverTimeout: Duration?
    /// The captured tables' OIDs when the stream started: a Relation message for one of them under another name
    /// is a rename, and a table that no longer resolves to its OID (or left the publication) was dropped.
    private var capturedOIDs: [OID: QualifiedName] = [:]
    /// Set once a captured table is found dropped or renamed: everything the slot holds up to `marker` (a
    /// message written after the check) is delivered first, then the stream stops with `failure`.
    private var tableGone: (marker: LSN, failure: FatalSourceError)?
    private var lastTableCheck = ContinuousClock.now
    /// Messages read from the stream but not yet handled: those after a stop marker.
    private var unhandled: [[UInt8]] = []
    private static let tableCheckInterval: Duration = .seconds(2)
    /// What was last confirmed to the server. A Mutex: the pipeline confirms while the next batch is read.
    private let confirmed: Mutex<LSN>
    public var confirmedFlush: LSN { confirmed.withLock { $0 } }

    /// `isStopping`: asked while waiting for a busy slot, so a shutdown does not wait out the wait.
    public static func open(config: SpillwayConfig, from position: ReplicationPosition, logger: Logger,
                            isStopping: @Sendable () -> Bool = { false }) async throws -> ReplicationReader {
        let catalog = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-catalog",
                                                           timeouts: config.ha.networkTimeouts)
        let stream: PostgresConnection
        do {
            // The walsender has data outstanding most of the time, when keepalives are not sent: its
            // tcp_user_timeout frees the slot for a standby soon after this runner's network went.
            stream = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-replication",
                                                          replication: true, timeouts: config.ha.networkTimeouts)
        } catch {
            await catalog.close()
            throw error
        }
        let reader = ReplicationReader(config: config, stream: stream, catalog: catalog, position: position, logger: logger)
        do {
            try await reader.start(isStopping: isStopping)
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

    private func start(isStopping: () -> Bool) async throws {
        let settings = config.source.replication
        var slot = try await catalog.query("SELECT wal_status, active_pid FROM pg_replication_slots WHERE slot_name = $1", [settings.slot])
        // Busy: most likely the walsender of the runner this one took over from, whose network went and which
        // the server has not ended yet. Wait for it here, holding the consumer's lock: a session that failed
        // and retried would let go of the lock, and the old runner could take it back meanwhile.
        let clock = ContinuousClock()
        let waitUntil = clock.now + max(.seconds(10), config.ha.takeover * 3)
        var loggedWait = false
        while let pid = slot.first?[1], clock.now < waitUntil, !isStopping() {
            if !loggedWait {
                logger.notice("waiting for the replication slot: another process reads it", metadata: [
                    "slot": "\(settings.slot)", "pid": "\(pid)"])
                loggedWait = true
            }
            try await Task.sleep(for: .milliseconds(250))
            slot = try await catalog.query("SELECT wal_status, active_pid FROM pg_replication_slots WHERE slot_name = $1", [settings.slot])
        }
        guard let row = slot.first else {
            if acknowledged.commitLSN > .zero {
                // This consumer has read the slot before: someone dropped it (pg_drop_replication_slot).
                throw FatalSourceError(
                    "replication slot '\(settings.slot)' was dropped (this consumer's checkpoint is at \(acknowledged)): the "
                        + "changes committed after the checkpoint went with it. Recover: `spillway install --config FILE` creates "
                        + "a new slot that captures from then on; re-snapshot what the consumers feed (rebuild the index or "
                        + "cache from the tables) for the changes in between")
            }
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
            // This runner holds the consumer's lock, so no other runner of the consumer is active: most likely the
            // walsender of the runner it took over from, whose network went and which the server has not ended
            // yet (tcp_user_timeout of ha.takeover, or wal_sender_timeout). Retried with backoff, never fatal.
            throw SlotBusyError(description: "replication slot '\(settings.slot)' is in use by process \(pid): the walsender "
                + "of a runner this one took over from, until the server ends it (about ha.takeover after its network went, "
                + "at most wal_sender_timeout), or another client reading the slot (stop it); retrying")
        }
        for (index, table) in config.source.tables.enumerated() {
            let resolved = try await catalog.query("SELECT to_regclass($1)::oid::int8", [table.sql])
            guard let oid = resolved.first?[0].flatMap({ OID($0) }) else {
                // Gone while Spillway was stopped. Nothing is streamed under a name the config does not list: once
                // it is corrected, the changes the slot holds for the table are delivered (under the name it has
                // in the config when it was renamed, since they are the same table's).
                throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist: it was dropped or renamed",
                                  fix: "if it was renamed, replace it with the new name in source.tables (and in sinks' tables); "
                                    + "if it was dropped, remove it. The changes the slot holds for it are delivered either way")
            }
            capturedOIDs[oid] = table
        }
        try await checkTables()
        // The database or the role may set its own; the walsender runs with what this role gets in this database.
        if let milliseconds = try await catalog.query("SELECT setting::int8 FROM pg_settings WHERE name = 'wal_sender_timeout'")
            .first?[0].flatMap({ Int64($0) }), milliseconds > 0 {
            serverTimeout = .milliseconds(milliseconds)
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

    /// Up to `maximum` events, waiting at most `wait` for the stream to say anything. `stop`: the position of a
    /// non-transactional message (`emitMarker`) at which the batch ends, with `reachedStop` set.
    public func next(maximum: Int, wait: Duration, stop: LSN? = nil) async throws -> ReplicationBatch {
        if let failure = pendingFailure { throw failure }
        if tableGone == nil, ContinuousClock.now - lastTableCheck > Self.tableCheckInterval { try await checkTables() }
        var batch = ReplicationBatch(events: [], position: nil, confirmable: nil)
        var receivedAnything = !unhandled.isEmpty
        while batch.events.count < maximum {
            let messages: [[UInt8]]
            if unhandled.isEmpty {
                messages = try await stream.readCopyData(maximum: 2000, timeout: receivedAnything ? .zero : wait)
            } else {
                messages = unhandled
                unhandled = []
            }
            if messages.isEmpty { break }
            receivedAnything = true
            for (index, bytes) in messages.enumerated() {
                do {
                    try await handle(bytes, into: &batch, stop: stop)
                } catch let failure as FatalSourceError where !batch.events.isEmpty {
                    // Deliver (and checkpoint) what came before the change that cannot be decoded, so the consumer
                    // stops exactly at it; the next call reports it.
                    pendingFailure = failure
                    return batch
                }
                if batch.reachedStop {
                    // What came after the marker is the next batch's.
                    unhandled = Array(messages[(index + 1)...])
                    return batch
                }
            }
        }
        return batch
    }

    /// Writes a non-transactional message on the catalog connection and returns the position the stream gives
    /// it: every transaction that committed before this call is before it in the stream.
    ///
    /// The walsender decodes only flushed WAL, and nothing flushes a lone message until the WAL writer's next
    /// round (`wal_writer_delay`, 200 ms): a snapshot chunk would wait that long for its marker. So the
    /// message is written in a transaction that takes an id and commits synchronously, which flushes it.
    public func emitMarker() async throws -> LSN {
        try await catalog.execute("BEGIN")
        do {
            let marker = try await catalog.query("SELECT pg_logical_emit_message(false, $1, '')::text", [ReplicationEventBuilder.heartbeatPrefix])
            try await catalog.execute("SET LOCAL synchronous_commit = on; SELECT pg_current_xact_id(); COMMIT")
            let end = marker.first?[0].flatMap { LSN(string: $0) } ?? .zero
            return ReplicationEventBuilder.position(ofNonTransactionalMessageEndingAt: end)
        } catch {
            try? await catalog.execute("ROLLBACK")
            throw error
        }
    }

    private func handle(_ bytes: [UInt8], into batch: inout ReplicationBatch, stop: LSN?) async throws {
        switch try ReplicationStreamMessage(decoding: bytes) {
        case .primaryKeepalive(let keepalive):
            // Only keepalives: everything before their position has been sent to us.
            serverWALEnd = max(serverWALEnd, keepalive.walEnd)
            if keepalive.isReplyRequested { try await sendStatus(flush: confirmedFlush) }
        case .xLogData(let data):
            var message = try decoder.decode(data.payload)
            if case .relation(var relation) = message {
                try await describe(&relation)
                message = .relation(relation)
            }
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
                    if let gone = tableGone, lsn >= gone.marker, !builder.isInTransaction {
                        // Everything committed before the table went is delivered (the batch so far): stop here.
                        throw gone.failure
                    }
                    if !builder.isInTransaction {
                        batch.position = ReplicationPosition(commitLSN: max(lsn, batch.position?.commitLSN ?? .zero, acknowledged.commitLSN))
                        batch.confirmable = lsn
                        if let stop, lsn >= stop { batch.reachedStop = true }
                    }
                }
            }
        }
    }

    /// Resolves what the builder cannot know from the stream: non-built-in types and the primary key.
    private func describe(_ relation: inout PGOutputMessage.Relation) async throws {
        if let captured = capturedOIDs[relation.id], captured != QualifiedName(schema: relation.namespace, name: relation.name) {
            let now = try await currentName(of: relation.id)
            if now == QualifiedName(schema: relation.namespace, name: relation.name) {
                // Renamed while streaming: the changes before this Relation message are delivered, none after it.
                throw Self.renamed(captured, to: now, index: config.source.tables.firstIndex(of: captured))
            }
            // Decoding uses the catalog of the moment a change was written: a change replayed from before a
            // rename carries the old name. It is the configured table's, and delivered under that name.
            relation.namespace = captured.schema
            relation.name = captured.name
        }
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

    /// Whether every captured table still is the one the stream started with, and published. A table that was
    /// dropped or renamed, or re-created (a new table, not in the publication), sends nothing more through the
    /// slot: its later changes would be missed without a word. So the first such finding writes a marker
    /// message, and the stream stops with the finding once the marker arrives, after everything before it.
    private func checkTables() async throws {
        lastTableCheck = .now
        let tables = config.source.tables
        let result = try await catalog.query(
            """
            SELECT to_regclass(t.name)::oid::int8, EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $4
                   AND p.schemaname = t.schema AND p.tablename = t.relname)
            FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY t(name, schema, relname, n) ORDER BY t.n
            """, [SQLText.arrayLiteral(tables.map(\.sql)), SQLText.arrayLiteral(tables.map(\.schema)),
                  SQLText.arrayLiteral(tables.map(\.name)), config.source.replication.publication])
        var failure: FatalSourceError?
        for (index, (table, row)) in zip(tables, result.rows).enumerated() {
            let oid = row[0].flatMap { OID($0) }
            let startOID = capturedOIDs.first { $0.value == table }?.key
            if let oid, startOID == nil || oid == startOID, row[1] == "t" { continue }
            if let startOID, let now = try await currentName(of: startOID), now != table {
                failure = Self.renamed(table, to: now, index: index)
            } else if oid == nil || oid != startOID {
                failure = FatalSourceError(
                    "table \(table) (source.tables[\(index)]) was dropped: every change committed before the drop was "
                        + "delivered. Fix: remove it from source.tables (and from sinks' tables), then start `spillway run` "
                        + "again; if it was re-created, `spillway install --config FILE` publishes the new table")
            } else {
                failure = FatalSourceError(
                    "table \(table) (source.tables[\(index)]) is not in publication \(config.source.replication.publication): "
                        + "its changes do not reach the slot. Fix: run `spillway install --config FILE` to publish it")
            }
            break
        }
        guard let failure else { return }
        logger.error("a captured table is gone; delivering what came before, then stopping", metadata: ["error": "\(failure)"])
        let marker = try await catalog.query("SELECT pg_logical_emit_message(false, $1, '')::text", [ReplicationEventBuilder.heartbeatPrefix])
        let end = marker.first?[0].flatMap { LSN(string: $0) } ?? .zero
        tableGone = (ReplicationEventBuilder.position(ofNonTransactionalMessageEndingAt: end), failure)
    }

    private func currentName(of oid: OID) async throws -> QualifiedName? {
        let result = try await catalog.query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid",
            [String(oid)])
        guard let row = result.first else { return nil }
        return QualifiedName(schema: row[0] ?? "", name: row[1] ?? "")
    }

    private static func renamed(_ table: QualifiedName, to now: QualifiedName?, index: Int?) -> FatalSourceError {
        let newName = now.map { "\($0)" } ?? "its new name"
        return FatalSourceError(
            "table \(table) (source.tables[\(index.map(String.init) ?? "?")]) was renamed to \(newName): every change before "
                + "the rename was delivered under its old name, none after it. Fix: replace it with \(newName) in "
                + "source.tables (and in sinks' tables), then start `spillway run` again")
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

/// The slot is read by another process for now; the session is retried.
public struct SlotBusyError: Error, CustomStringConvertible {
    public let description: String
}

/// The source cannot go on without the operator: an invalidated slot, a dropped one.
public struct FatalSourceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
