/// One chunk of a table snapshot: rows read by primary key in one short REPEATABLE READ transaction, held
/// until the stream reaches the point where they can be emitted without undoing a newer change.
///
/// Why a chunk never overwrites a newer value (README, "Snapshots"): the chunk shows exactly the transactions
/// visible in its `visibility` snapshot. For the audit_log source, that snapshot becomes the boundary of the
/// next audit batch, so every change it shows is delivered before the chunk and every change it does not show
/// after it: nothing to drop. For the replication source the stream is ordered by commit, not by visibility,
/// so the chunk is emitted at a marker written after the read, and until then every change of a chunk row by
/// a transaction the snapshot does not show drops that row: the stream carries that change, and it is newer.
/// A change by a transaction the snapshot shows is already in the row.
public struct SnapshotChunk: Sendable {
    public var table: QualifiedName
    /// What the chunk's transaction saw.
    public var visibility: PGSnapshot
    /// The rows, in primary-key order: each as a `read` event and its key's text form (where the next chunk
    /// starts when this row is the last emitted).
    public private(set) var rows: [Row]
    /// How many rows the select returned (dropped ones included): a short chunk ends the table.
    public let rowsRead: Int
    /// The key (text form) of the last row the select returned: the next chunk starts after it.
    public let lastKey: [String]?

    public struct Row: Sendable {
        public var event: ChangeEvent
        /// Most primary keys are one column: kept without an array, which would be one more allocation per
        /// row of a million-row snapshot, for a key that is only read at the end of a piece.
        private var keyText: KeyText

        private enum KeyText: Sendable {
            case single(String)
            case composite([String])
        }

        public var key: [String] {
            get {
                switch keyText {
                case .single(let text): return [text]
                case .composite(let texts): return texts
                }
            }
            set { keyText = newValue.count == 1 ? .single(newValue[0]) : .composite(newValue) }
        }

        public init(event: ChangeEvent, key: [String]) {
            self.event = event
            keyText = key.count == 1 ? .single(key[0]) : .composite(key)
        }

        /// A row of a table whose primary key is one column.
        public init(event: ChangeEvent, singleKey: String) {
            self.event = event
            keyText = .single(singleKey)
        }
    }

    public init(table: QualifiedName, visibility: PGSnapshot, rows: [Row]) {
        self.table = table
        self.visibility = visibility
        self.rows = rows
        self.rowsRead = rows.count
        self.lastKey = rows.last?.key
    }

    public var events: [ChangeEvent] { rows.map(\.event) }

    /// The rows, moved out: the chunk keeps none.
    mutating func takeRows() -> [Row] {
        var taken: [Row] = []
        swap(&taken, &rows)
        return taken
    }

    /// Drops the rows that changes of `stream` (read after the chunk, before its marker) make stale: those
    /// changed by a transaction the chunk's snapshot does not show, by key before and after the change; a
    /// truncate by such a transaction drops every row. An update that left TOASTed columns out (`unchanged`)
    /// cannot stand for the whole row, so it is laid over the chunk's row instead: the columns it left out are
    /// the ones it did not change, and the chunk holds them.
    public mutating func discardRows(changedIn stream: [ChangeEvent]) {
        guard let keyColumns = rows.first?.event.key?.names else { return }
        var index: [JSONObject: Int] = [:]
        var dropped: Set<Int> = []
        for change in stream where change.schema == table.schema && change.table == table.name {
            guard let txid = change.txid, !visibility.isVisible(shortXID: txid) else { continue }
            if index.isEmpty {
                for (position, row) in rows.enumerated() { if let key = row.event.key { index[key] = position } }
            }
            switch change.op {
            case .truncate:
                rows = []
                return
            case .insert, .update, .delete:
                var oldKey: JSONObject?
                if let before = change.before {
                    oldKey = JSONObject(keyColumns.map { ($0, before[$0] ?? .null) })
                }
                if change.op == .update, !change.unchangedColumns.isEmpty, let key = change.key, oldKey == nil || oldKey == key,
                   let position = index[key], !dropped.contains(position), let after = change.after {
                    var row = rows[position].event.after ?? [:]
                    for field in after.fields { row[field.name] = field.value }
                    rows[position].event.after = row
                    continue
                }
                for key in [change.key, oldKey].compactMap({ $0 }) {
                    if let position = index[key] { dropped.insert(position) }
                }
            case .message, .read:
                continue
            }
        }
        if !dropped.isEmpty {
            rows = rows.enumerated().filter { !dropped.contains($0.offset) }.map(\.element)
        }
    }
}

/// Hands a chunk's rows to the pipeline in batches of at most `maximum`, each with the progress to save once
/// it is acknowledged: a piece moves the table's key to its last row, the last piece to the select's last row
/// and, when the select came back short, marks the table done.
public struct SnapshotEmission: Sendable {
    /// The rows not yet emitted, last row first: a piece pops its rows off the end, moving each event out
    /// rather than copying it (a chunk is thousands of events, each a few dozen reference-counted strings).
    private var remaining: [SnapshotChunk.Row]
    private var progress: SnapshotProgress
    private let rowsRead: Int
    private let lastKey: [String]?
    private let isLastChunk: Bool
    private var emittedRows = 0
    private var isFinished = false

    /// Takes the chunk's rows over (the chunk keeps none): they are moved, not copied, when `chunk` holds the
    /// only reference to them.
    public init(taking chunk: inout SnapshotChunk, progress: SnapshotProgress, chunkSize: Int) {
        rowsRead = chunk.rowsRead
        lastKey = chunk.lastKey
        isLastChunk = chunk.rowsRead < chunkSize
        remaining = chunk.takeRows()
        remaining.reverse()
        self.progress = progress
    }

    /// The next piece, and where the snapshot stands once it is acknowledged; nil once the chunk is emitted.
    /// A chunk whose rows were all dropped (or a table without rows) still gives one empty piece: its progress.
    public mutating func next(maximum: Int) -> (events: [ChangeEvent], progress: SnapshotProgress)? {
        guard !isFinished else { return nil }
        guard let index = progress.tables.firstIndex(where: { !$0.isDone }) else {
            isFinished = true
            return nil
        }
        var events: [ChangeEvent] = []
        events.reserveCapacity(min(max(1, maximum), remaining.count))
        var lastRow: SnapshotChunk.Row?
        while events.count < max(1, maximum), let row = remaining.popLast() {
            events.append(row.event)
            lastRow = row
        }
        let lastRowKey = lastRow?.key  // only the piece's last row: its key is where the table then stands
        if remaining.isEmpty {
            isFinished = true
            progress.tables[index].rows += Int64(rowsRead - emittedRows)
            if let lastKey { progress.tables[index].lastKey = lastKey }
            if isLastChunk { progress.tables[index].isDone = true }
        } else {
            emittedRows += events.count
            progress.tables[index].rows += Int64(events.count)
            if let lastRowKey { progress.tables[index].lastKey = lastRowKey }
        }
        return (events, progress)
    }
}

extension PGSnapshot {
    /// Visibility of a transaction known by its 32-bit xid (pgoutput's), taken as the 64-bit id nearest this
    /// snapshot's `xmax`: ids within 2^31 of it, which any transaction a reader meets while this snapshot is
    /// current is.
    public func isVisible(shortXID: UInt64) -> Bool {
        let low = UInt32(truncatingIfNeeded: shortXID)
        let distance = Int64(Int32(bitPattern: low &- UInt32(truncatingIfNeeded: xmax)))
        let full = Int64(xmax) + distance
        return full > 0 && isVisible(UInt64(full))
    }

    /// True when a transaction this snapshot still counts as running is among `xids` (32-bit or 64-bit ids of
    /// transactions already delivered): a commit the stream carried before the snapshot could see it.
    public func showsAsRunning(anyOf xids: some Sequence<UInt64>) -> Bool {
        let running = Set(running.map { UInt32(truncatingIfNeeded: $0) })
        return xids.contains { running.contains(UInt32(truncatingIfNeeded: $0)) }
    }
}
