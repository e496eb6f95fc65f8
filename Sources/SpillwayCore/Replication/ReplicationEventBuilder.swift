/// Where a replication consumer stands: every change up to and including (`commitLSN`, `index`) is
/// acknowledged; `index == nil` means the whole transaction at `commitLSN` is.
///
/// Changes of one transaction share its commit LSN, so the LSN alone cannot say "the first three of
/// this transaction are delivered": a restart that resumed by LSN would drop or repeat the rest.
public struct ReplicationPosition: Sendable, Hashable, CustomStringConvertible {
    public var commitLSN: LSN
    public var index: Int?
    /// Where the table snapshot stands (`source.snapshot`), saved with the stream position; nil when none
    /// runs.
    public var snapshot: SnapshotProgress?

    public init(commitLSN: LSN, index: Int? = nil, snapshot: SnapshotProgress? = nil) {
        self.commitLSN = commitLSN
        self.index = index
        self.snapshot = snapshot
    }

    public static let start = ReplicationPosition(commitLSN: .zero)

    /// True when the change (`commitLSN`, `index`) was already acknowledged.
    public func covers(commitLSN other: LSN, index otherIndex: Int) -> Bool {
        if other < commitLSN { return true }
        if other > commitLSN { return false }
        guard let index else { return true }
        return otherIndex <= index
    }

    public var description: String { index.map { "\(commitLSN):\($0)" } ?? "\(commitLSN)" }
}

/// Turns decoded pgoutput messages into change events, one transaction at a time. Pure: the reader feeds
/// messages and resolves type OIDs it does not know (`unknownTypes`) from the catalog.
public struct ReplicationEventBuilder: Sendable {
    public enum Output: Sendable, Equatable {
        case none
        /// A change, with the (commit LSN, index) that orders it.
        case event(ChangeEvent, ReplicationPosition)
        /// The transaction at `commitLSN` ended; everything of it was output before.
        case commit(commitLSN: LSN, endLSN: LSN)
        /// A message outside any transaction (heartbeats included): nothing pending is behind `lsn`.
        case progress(lsn: LSN)
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public struct Options: Sendable {
        /// Tenant column per table (`schema.table`), and a default for all tables.
        public var tenantColumns: [String: String]
        public var defaultTenantColumn: String?
        /// Logical messages with this prefix are progress markers, never events.
        public var heartbeatPrefix: String
        public var includeMessages: Bool

        public init(tenantColumns: [String: String] = [:], defaultTenantColumn: String? = nil,
                    heartbeatPrefix: String = ReplicationEventBuilder.heartbeatPrefix, includeMessages: Bool = true) {
            self.tenantColumns = tenantColumns
            self.defaultTenantColumn = defaultTenantColumn
            self.heartbeatPrefix = heartbeatPrefix
            self.includeMessages = includeMessages
        }
    }

    /// The prefix of Spillway's own heartbeat messages (and `run --once`'s end marker).
    public static let heartbeatPrefix = "spillway-heartbeat"

    private var relations = RelationCache()
    private var kinds: [OID: PGTypeKind] = [:]
    private var primaryKeys: [OID: [String]] = [:]
    private let options: Options
    private var transaction: (xid: UInt32, commitLSN: LSN, commitTime: String, nextIndex: Int)?

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Type OIDs of `relation` that are not built in and not yet registered.
    public func unknownTypes(in relation: PGOutputMessage.Relation) -> [OID] {
        relation.columns.map(\.typeOID).filter { kinds[$0] == nil && PGTypeKind(builtinOID: $0) == nil }
    }

    public mutating func register(kind: PGTypeKind, for oid: OID) {
        kinds[oid] = kind
    }

    /// The table's primary key from the catalog; without one, the relation's identity columns serve.
    public mutating func register(primaryKey: [String], for relationID: OID) {
        primaryKeys[relationID] = primaryKey.isEmpty ? nil : primaryKey
    }

    public var isInTransaction: Bool { transaction != nil }

    /// Forget relations and any half-read transaction (a new replication session resends both).
    public mutating func reset() {
        relations = RelationCache()
        transaction = nil
    }

    public mutating func handle(_ message: PGOutputMessage) throws -> [Output] {
        switch message {
        case .begin(let begin):
            transaction = (begin.xid, begin.finalLSN, begin.commitTimestamp.iso8601, 0)
            return []
        case .commit(let commit):
            guard let current = transaction else { throw Error(description: "Commit without Begin at \(commit.commitLSN)") }
            transaction = nil
            return [.commit(commitLSN: current.commitLSN, endLSN: commit.endLSN)]
        case .relation(let relation):
            relations.store(relation)
            return []
        case .origin, .type:
            return []
        case .insert(let insert):
            let relation = try relation(insert.relationID)
            let after = row(insert.newTuple, relation: relation)
            return [try makeEvent(.insert, relation: relation, before: nil, after: after)]
        case .update(let update):
            let relation = try relation(update.relationID)
            let after = row(update.newTuple, relation: relation)
            // Without REPLICA IDENTITY FULL the old row comes only as its key (and only when the key changed).
            let before = update.oldTuple.map { row($0.tuple, relation: relation, keyOnly: $0.isKeyOnly) }
            return [try makeEvent(.update, relation: relation, before: before?.values, after: after)]
        case .delete(let delete):
            let relation = try relation(delete.relationID)
            let before = row(delete.oldTuple.tuple, relation: relation, keyOnly: delete.oldTuple.isKeyOnly)
            return [try makeEvent(.delete, relation: relation, before: before.values, after: nil)]
        case .truncate(let truncate):
            var outputs: [Output] = []
            for id in truncate.relationIDs {
                outputs.append(try makeEvent(.truncate, relation: try relation(id), before: nil, after: nil))
            }
            return outputs
        case .logicalMessage(let logical):
            let ownLSN = Self.position(ofNonTransactionalMessageEndingAt: logical.lsn)
            if logical.prefix == options.heartbeatPrefix || !options.includeMessages {
                return transaction == nil ? [.progress(lsn: ownLSN)] : []
            }
            let info = ChangeEvent.LogicalMessage(prefix: logical.prefix, content: String(decoding: logical.content, as: UTF8.self),
                                                  isTransactional: logical.isTransactional)
            if logical.isTransactional, transaction != nil {
                var (event, position) = makeEvent(.message, schema: "message", table: logical.prefix)
                event.message = info
                return [.event(event, position)]
            }
            // A non-transactional message is its own unit, positioned just before its own end.
            let position = ReplicationPosition(commitLSN: ownLSN, index: 0)
            var event = ChangeEvent(id: "\(ownLSN)-0", op: .message, schema: "message", table: logical.prefix,
                                    position: position.description)
            event.message = info
            return [.event(event, position), .commit(commitLSN: ownLSN, endLSN: ownLSN)]
        case .streamStart, .streamStop, .streamCommit, .streamAbort:
            throw Error(description: "streamed transaction messages arrived, but Spillway starts replication with streaming off")
        }
    }

    /// pgoutput gives a non-transactional message the LSN where its record *ends*, which is where the next
    /// record starts — often the commit record of a transaction still to come, whose changes then share that
    /// LSN as their commit LSN. One byte earlier lies inside the message's own record, where no commit can
    /// start: as a position it orders the message before that transaction, and it never covers (so never
    /// skips after a restart) any of that transaction's changes, nor gives one of them the message's id.
    public static func position(ofNonTransactionalMessageEndingAt lsn: LSN) -> LSN {
        lsn.rawValue > 0 ? LSN(lsn.rawValue - 1) : lsn
    }

    /// The table's replica identity is a unique index that leaves out primary-key columns: its deletes (and
    /// key-changing updates) carry no primary key, so they cannot be keyed like the row's other changes.
    public func identityLacksPrimaryKey(_ relation: PGOutputMessage.Relation) -> [String]? {
        guard relation.replicaIdentity == .index, let primaryKey = primaryKeys[relation.id] else { return nil }
        let identity = Set(relation.columns.filter(\.isKey).map(\.name))
        let missing = primaryKey.filter { !identity.contains($0) }
        return missing.isEmpty ? nil : missing
    }

    private func relation(_ id: OID) throws -> PGOutputMessage.Relation {
        do {
            return try relations.relation(id: id)
        } catch {
            throw Error(description: "a change refers to relation \(id), which no Relation message described")
        }
    }

    private struct Row {
        var values: JSONObject
        var unchanged: [String]
    }

    private func row(_ tuple: TupleData, relation: PGOutputMessage.Relation, keyOnly: Bool = false) -> Row {
        var fields: [(String, JSONValue)] = []
        fields.reserveCapacity(relation.columns.count)
        var unchanged: [String] = []
        for (column, value) in zip(relation.columns, tuple.values) {
            if keyOnly, !column.isKey { continue }
            switch value {
            case .null:
                fields.append((column.name, .null))
            case .unchangedToast:
                unchanged.append(column.name)
            case .text(let bytes):
                let kind = kinds[column.typeOID] ?? PGTypeKind(builtinOID: column.typeOID) ?? .text
                fields.append((column.name, PGValueMapper.json(fromText: String(decoding: bytes, as: UTF8.self), kind: kind)))
            case .binary(let bytes):
                fields.append((column.name, .string("\\x" + bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined())))
            }
        }
        return Row(values: JSONObject(fields), unchanged: unchanged)
    }

    private mutating func makeEvent(_ op: ChangeEvent.Operation, relation: PGOutputMessage.Relation,
                                    before: JSONObject?, after: Row?) throws -> Output {
        var (event, position) = makeEvent(op, schema: relation.namespace, table: relation.name)
        event.before = before
        event.after = after?.values
        event.unchangedColumns = after?.unchanged ?? []
        if op != .truncate, let row = after?.values ?? before {
            // Under the default identity pgoutput flags the primary key as it was when the change was written
            // (decoding reads the catalog of that moment), which the live catalog may no longer be after the key
            // changed: those flags key the change. REPLICA IDENTITY FULL flags every column, and USING INDEX
            // flags the index: the primary key then comes from the catalog.
            let flagged = relation.columns.filter(\.isKey).map(\.name)
            let keyColumns = relation.replicaIdentity == .default && !flagged.isEmpty
                ? flagged
                : primaryKeys[relation.id] ?? (relation.replicaIdentity == .full ? [] : flagged)
            if !keyColumns.isEmpty {
                var key: [(String, JSONValue)] = []
                for name in keyColumns {
                    guard let value = row[name] ?? before?[name] ?? (relation.replicaIdentity == .index ? nil : .null) else {
                        // Only an old row under REPLICA IDENTITY USING INDEX lacks a key column: a null there would
                        // send the change to another partition than the row's and make a tombstone miss it.
                        throw Error(description: "\(op.rawValue) on \(relation.namespace).\(relation.name) carries no value for "
                            + "primary-key column \(name): its REPLICA IDENTITY USING INDEX leaves the primary key out, so the "
                            + "change cannot be keyed. Fix: ALTER TABLE \(relation.namespace).\(relation.name) REPLICA IDENTITY FULL "
                            + "(or DEFAULT, or USING INDEX on an index that includes the primary key); changes written before the "
                            + "fix cannot be keyed and keep this consumer stopped at them")
                    }
                    key.append((name, value))
                }
                event.key = JSONObject(key)
            }
            let qualified = "\(relation.namespace).\(relation.name)"
            if let column = options.tenantColumns[qualified] ?? options.defaultTenantColumn, let value = row[column], value != .null {
                event.tenant = value.plainText
            }
        }
        return .event(event, position)
    }

    private mutating func makeEvent(_ op: ChangeEvent.Operation, schema: String, table: String) -> (ChangeEvent, ReplicationPosition) {
        let current = transaction ?? (0, .zero, "", 0)
        let position = ReplicationPosition(commitLSN: current.commitLSN, index: current.nextIndex)
        transaction?.nextIndex += 1
        let event = ChangeEvent(
            id: "\(current.commitLSN)-\(current.nextIndex)", op: op, schema: schema, table: table,
            txid: UInt64(current.xid), commitTime: current.commitTime, position: position.description)
        return (event, position)
    }
}

extension OldTuple {
    var isKeyOnly: Bool {
        if case .key = self { return true }
        return false
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
