/// Where an audit_log consumer stands, exactly as `spillway.checkpoints` stores it.
///
/// Reading happens in three phases: history (rows an adopted audit table held before Spillway gave it a
/// transaction-id column), then batches between snapshots. Within a batch, transactions are ordered by the
/// highest audit sequence number they wrote, rows within a transaction by sequence number: see
/// `AuditLogOrdering`.
public struct AuditLogCursor: Sendable, Hashable {
    /// Every transaction visible in this snapshot has been delivered and acknowledged.
    public var completed: PGSnapshot
    /// The batch being read, if one was started: transactions visible here and not in `completed`.
    public var batch: PGSnapshot?
    /// Within `batch`, the last acknowledged row, as (transaction rank, sequence number).
    public var batchProgress: AuditLogOrdering?
    /// Pre-adoption rows without a transaction id: nil while none was delivered yet.
    public var historyProgress: HistoryProgress?
    public var isHistoryDone: Bool
    /// Where the table snapshot stands (`source.snapshot`); nil when none runs.
    public var snapshot: SnapshotProgress?

    public struct HistoryProgress: Sendable, Hashable {
        /// The text form of the last delivered row's `changed_at`, compared in SQL.
        public var changedAt: String
        public var id: String

        public init(changedAt: String, id: String) {
            self.changedAt = changedAt
            self.id = id
        }
    }

    public init(
        completed: PGSnapshot = .origin, batch: PGSnapshot? = nil, batchProgress: AuditLogOrdering? = nil,
        historyProgress: HistoryProgress? = nil, isHistoryDone: Bool = false
    ) {
        self.completed = completed
        self.batch = batch
        self.batchProgress = batchProgress
        self.historyProgress = historyProgress
        self.isHistoryDone = isHistoryDone
    }

    /// A new consumer: it reads everything still in the audit table.
    public static func start(includingHistory: Bool) -> AuditLogCursor {
        AuditLogCursor(isHistoryDone: !includingHistory)
    }

    /// The batch ended: everything in it is acknowledged.
    public mutating func completeBatch() {
        if let batch { completed = batch }
        batch = nil
        batchProgress = nil
    }
}

/// The order rows leave a batch in: by `transactionRank` (the highest audit sequence number the row's
/// transaction wrote), then by `sequence`.
///
/// Why this follows commit order where it matters: two transactions that change the same row cannot both
/// hold its lock, so the later one writes its audit row (and takes its sequence number) only after the
/// earlier one committed; its highest sequence number is then above every number the earlier one took.
/// Transactions that touched no common row may come out in either order, which no key can observe.
/// Transaction ids cannot serve: they are assigned at first write, not at commit.
public struct AuditLogOrdering: Sendable, Hashable, Comparable {
    public var transactionRank: Int64
    public var sequence: Int64

    public init(transactionRank: Int64, sequence: Int64) {
        self.transactionRank = transactionRank
        self.sequence = sequence
    }

    public static func < (lhs: AuditLogOrdering, rhs: AuditLogOrdering) -> Bool {
        (lhs.transactionRank, lhs.sequence) < (rhs.transactionRank, rhs.sequence)
    }
}

/// How audit rows become change events: positions, stable ids, and decoding of a stored row.
public enum AuditLogEvents {
    /// `txid/seq`, e.g. `7712/104`: the transaction and the audit row.
    public static func position(txid: UInt64, sequence: Int64) -> String { "\(txid)/\(sequence)" }

    /// Stable across restarts and replays: the audit row's identity never changes.
    public static func id(txid: UInt64, sequence: Int64) -> String { "\(txid)-\(sequence)" }

    public static func historyPosition(id: String) -> String { "history/\(id)" }

    public static func historyID(id: String) -> String { "h-\(id)" }

    /// Triggers write `TG_OP` (`INSERT`...); hand-written ones often use `I`/`U`/`D`/`T`.
    public static func operation(_ stored: String) -> ChangeEvent.Operation? {
        switch stored.uppercased() {
        case "INSERT", "I": return .insert
        case "UPDATE", "U": return .update
        case "DELETE", "D": return .delete
        case "TRUNCATE", "T": return .truncate
        default: return nil
        }
    }

    public struct Row: Sendable {
        public var txid: UInt64?
        public var sequence: Int64?
        public var auditID: String
        public var schema: String?
        public var table: String
        public var operation: String
        public var oldData: String?
        public var newData: String?
        public var tenant: String?
        public var commitTime: String?

        public init(
            txid: UInt64?, sequence: Int64?, auditID: String, schema: String?, table: String, operation: String,
            oldData: String?, newData: String?, tenant: String?, commitTime: String?
        ) {
            self.txid = txid
            self.sequence = sequence
            self.auditID = auditID
            self.schema = schema
            self.table = table
            self.operation = operation
            self.oldData = oldData
            self.newData = newData
            self.tenant = tenant
            self.commitTime = commitTime
        }
    }

    public struct DecodingError: Error, CustomStringConvertible {
        public let auditID: String
        public let problem: String
        public var description: String { "audit row \(auditID): \(problem)" }
    }

    /// Turns a stored audit row into an event. `tables` resolves `schema.table` (and a bare table name, for
    /// adopted logs that store none) to the captured table's catalog description. A bare name that several
    /// captured tables share is an error: guessing would hand one table's rows to another.
    public static func event(from row: Row, tables: TableDirectory) throws -> ChangeEvent {
        try event(from: row, resolved: tables.resolve(schema: row.schema, table: row.table))
    }

    /// The same, for a row whose table the caller already resolved.
    public static func event(from row: Row, resolved: TableDirectory.Resolution) throws -> ChangeEvent {
        switch resolved {
        case .captured(let table): return try event(from: row, table: table)
        case .notCaptured: return try event(from: row, table: nil)
        case .ambiguous(let candidates):
            throw DecodingError(auditID: row.auditID, problem: "table name '\(row.table)' without a schema matches "
                + "\(candidates.joined(separator: " and ")): the row cannot be attributed. Fix: give the trigger that writes "
                + "it a schema (Spillway's own trigger records one), or capture only one of them")
        }
    }

    /// Turns a stored audit row of the captured `table` (nil: not captured, passed on as stored) into an
    /// event named after `table`, also when the row was stored under a partition's name.
    public static func event(from row: Row, table: TableInfo?) throws -> ChangeEvent {
        func withBytes<T>(_ text: String?, _ body: (UnsafeBufferPointer<UInt8>?) throws -> T) rethrows -> T {
            guard var text else { return try body(nil) }
            return try text.withUTF8 { try body($0) }
        }
        return try withBytes(row.oldData) { oldData in
            try withBytes(row.newData) { newData in try event(from: row, table: table, oldData: oldData, newData: newData) }
        }
    }

    /// The same, with the row data as bytes the caller holds (the reader parses them where libpq keeps them, not
    /// copied into strings first); `row.oldData` and `row.newData` are not read.
    public static func event(from row: Row, resolved: TableDirectory.Resolution,
                             oldData: UnsafeBufferPointer<UInt8>?, newData: UnsafeBufferPointer<UInt8>?) throws -> ChangeEvent {
        switch resolved {
        case .captured(let table): return try event(from: row, table: table, oldData: oldData, newData: newData)
        case .notCaptured: return try event(from: row, table: nil, oldData: oldData, newData: newData)
        case .ambiguous: return try event(from: row, resolved: resolved)
        }
    }

    static func event(from row: Row, table: TableInfo?,
                      oldData: UnsafeBufferPointer<UInt8>?, newData: UnsafeBufferPointer<UInt8>?) throws -> ChangeEvent {
        guard let op = operation(row.operation) else {
            throw DecodingError(auditID: row.auditID, problem: "unknown operation '\(row.operation)'")
        }
        func decode(_ bytes: UnsafeBufferPointer<UInt8>?) throws -> JSONObject? {
            guard let bytes else { return nil }
            do {
                guard case .object(let object) = try JSONParser.parse(bytes) else {
                    throw DecodingError(auditID: row.auditID, problem: "row data is not a JSON object")
                }
                return PGValueMapper.normalize(jsonbRow: object, table: table)
            } catch let error as JSONParser.Error {
                throw DecodingError(auditID: row.auditID, problem: error.description)
            }
        }
        let before = op == .insert || op == .truncate ? nil : try decode(oldData)
        let after = op == .delete || op == .truncate ? nil : try decode(newData)
        let id: String
        let position: String
        if let txid = row.txid, let sequence = row.sequence {
            // `id` and `position` spelled out, each number turned to text once for both (every audit row).
            let txidText = String(txid), sequenceText = String(sequence)
            id = txidText + "-" + sequenceText
            position = txidText + "/" + sequenceText
        } else {
            id = historyID(id: row.auditID)
            position = historyPosition(id: row.auditID)
        }
        return ChangeEvent(
            id: id, op: op, schema: table?.schema ?? row.schema ?? "public", table: table?.name ?? row.table,
            key: PGValueMapper.key(of: after ?? before, table: table),
            before: before, after: after, txid: row.txid, commitTime: row.commitTime,
            position: position, tenant: row.tenant.flatMap { $0.isEmpty ? nil : $0 }
        )
    }
}

/// The captured tables by name, for turning stored rows into events.
public struct TableDirectory: Sendable {
    private var byQualifiedName: [QualifiedName: TableInfo] = [:]
    private var byBareName: [String: [TableInfo]] = [:]
    /// Other names rows of a captured table are stored under: its partitions' (a legacy trigger records the
    /// partition that holds the row), keyed `schema.name` and, for rows without a schema, by bare name.
    private var aliases: [QualifiedName: TableInfo] = [:]
    private var bareAliases: [String: [TableInfo]] = [:]

    public init(_ tables: [TableInfo]) {
        for table in tables {
            byQualifiedName[QualifiedName(schema: table.schema, name: table.name)] = table
            byBareName[table.name, default: []].append(table)
        }
    }

    public var tables: [TableInfo] { Array(byQualifiedName.values) }

    /// What an audit row's (schema, table) names.
    public enum Resolution: Sendable, Equatable {
        case captured(TableInfo)
        /// No captured table: a table this consumer does not read (another consumer's, or one an adopted
        /// audit table logs besides).
        case notCaptured
        /// A bare name that several captured tables share: the row cannot be attributed.
        case ambiguous([String])
    }

    public func resolve(schema: String?, table: String) -> Resolution {
        if let schema {
            let name = QualifiedName(schema: schema, name: table)
            if let found = byQualifiedName[name] ?? aliases[name] { return .captured(found) }
            return .notCaptured
        }
        let candidates = (byBareName[table] ?? []) + (bareAliases[table] ?? [])
        let distinct = Dictionary(candidates.map { ($0.qualifiedName, $0) }, uniquingKeysWith: { first, _ in first })
        switch distinct.count {
        case 0: return .notCaptured
        case 1: return .captured(distinct.values.first!)
        default: return .ambiguous(distinct.keys.sorted())
        }
    }

    /// A bare name resolves only when exactly one captured table has it.
    public func lookup(schema: String?, table: String) -> TableInfo? {
        if case .captured(let info) = resolve(schema: schema, table: table) { return info }
        return nil
    }

    /// Rows stored under `alias` (a partition of `table`) belong to `table`.
    public mutating func add(alias: QualifiedName, for table: QualifiedName) {
        guard let info = byQualifiedName[table], byQualifiedName[alias] == nil else { return }
        aliases[alias] = info
        if !(bareAliases[alias.name] ?? []).contains(where: { $0.qualifiedName == info.qualifiedName }) {
            bareAliases[alias.name, default: []].append(info)
        }
    }
}

extension AuditLogCursor: CustomStringConvertible {
    public var description: String {
        var text = "completed \(completed)"
        if let batch { text += ", batch \(batch)" }
        if let batchProgress { text += " after \(batchProgress.transactionRank)/\(batchProgress.sequence)" }
        if !isHistoryDone { text += ", history " + (historyProgress.map { "after \($0.id)" } ?? "from the start") }
        return text
    }
}
