/// An outbox row to delete once the event it became is checkpointed (`source.outbox.delete_after`).
public struct OutboxRow: Sendable, Hashable {
    public var table: QualifiedName
    /// The row's primary key, as the event's `key` has it (before any mask).
    public var key: JSONObject

    public init(table: QualifiedName, key: JSONObject) {
        self.table = table
        self.key = key
    }
}

/// Turns changes of `source.outbox` tables into routed events: an insert (or a snapshot's read of a row
/// still in the table) gets an `outbox` field; updates, deletes and truncates of an outbox table are not
/// messages and reach no sink (the deletes `delete_after` makes among them). Pure: the pipeline applies it
/// to each batch before any sink sees it.
public struct OutboxRouter: Sendable {
    private let tables: [QualifiedName: OutboxTable]

    public init(_ outbox: [OutboxTable]) {
        tables = Dictionary(outbox.map { ($0.table, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public var isEmpty: Bool { tables.isEmpty }

    /// `events` with outbox changes routed or dropped, in order, and the outbox rows to delete once they are
    /// checkpointed. `keys` are the events as read (`events` may be masked already): a row is deleted by
    /// the primary key it has in the table, while the `outbox` field is built from what sinks may see.
    public func route(_ events: [ChangeEvent], keys: [ChangeEvent]? = nil) -> (events: [ChangeEvent], deletions: [OutboxRow]) {
        guard !isEmpty else { return (events, []) }
        var routed: [ChangeEvent] = []
        routed.reserveCapacity(events.count)
        var deletions: [OutboxRow] = []
        for (index, event) in events.enumerated() {
            let name = QualifiedName(schema: event.schema, name: event.table)
            guard let outbox = tables[name] else {
                routed.append(event)
                continue
            }
            guard event.op == .insert || event.op == .read, let row = event.after else { continue }
            var message = event
            message.outbox = ChangeEvent.OutboxMessage(route: Self.text(row[outbox.routeBy]), key: Self.text(row[outbox.key]),
                                                       payload: row[outbox.payload] ?? .null)
            routed.append(message)
            let original = keys.map { $0[index] } ?? event
            if outbox.deleteAfter, let key = original.key, !key.isEmpty { deletions.append(OutboxRow(table: name, key: key)) }
        }
        return (routed, deletions)
    }

    private static func text(_ value: JSONValue?) -> String? {
        guard let value, value != .null else { return nil }
        return value.plainText
    }
}
