import Testing

@testable import SpillwayCore

private let table = QualifiedName(schema: "public", name: "outbox")

private func change(_ op: ChangeEvent.Operation, id: String, table: String = "outbox", masked: Bool = false) -> ChangeEvent {
    let row: JSONObject = ["id": .number(id), "aggregate_type": .string("Order"), "aggregate_id": .string("o-\(id)"),
                           "payload": .object(["n": .number(id)])]
    return ChangeEvent(id: "1-\(id)", op: op, schema: "public", table: table,
                       key: masked ? ["id": .string("hash")] : ["id": .number(id)],
                       before: op == .insert || op == .read ? nil : row, after: op == .delete ? nil : row, position: "1/\(id)")
}

@Suite("Outbox router: which changes are routed, with what (no servers)")
struct OutboxRouterTests {
    @Test func insertsAreRoutedOtherChangesOfTheOutboxDropped() {
        let router = OutboxRouter([OutboxTable(table: table, deleteAfter: true)])
        let events = [change(.insert, id: "1"), change(.update, id: "1"), change(.delete, id: "1"), change(.insert, id: "2", table: "orders"),
                      change(.truncate, id: "3"), change(.read, id: "4")]
        let (routed, deletions) = router.route(events)
        #expect(routed.map(\.id) == ["1-1", "1-2", "1-4"])
        #expect(routed[0].outbox == ChangeEvent.OutboxMessage(route: "Order", key: "o-1", payload: .object(["n": .number("1")])))
        #expect(routed[1].outbox == nil)  // another table: untouched
        #expect(routed[1] == events[3])
        #expect(deletions == [OutboxRow(table: table, key: ["id": .number("1")]), OutboxRow(table: table, key: ["id": .number("4")])])
    }

    @Test func columnsAreConfigurableAndDeletionsOnlyWithDeleteAfter() {
        let router = OutboxRouter([OutboxTable(table: table, routeBy: "aggregate_id", key: "aggregate_type", payload: "missing")])
        let (routed, deletions) = router.route([change(.insert, id: "7")])
        #expect(routed[0].outbox == ChangeEvent.OutboxMessage(route: "o-7", key: "Order", payload: .null))
        #expect(deletions.isEmpty)
    }

    @Test func deletionsUseTheKeyAsRead() {
        // A masked event (hashed key) is routed; its row is deleted by the key the table has.
        let router = OutboxRouter([OutboxTable(table: table, deleteAfter: true)])
        let (_, deletions) = router.route([change(.insert, id: "5", masked: true)], keys: [change(.insert, id: "5")])
        #expect(deletions == [OutboxRow(table: table, key: ["id": .number("5")])])
    }

    @Test func theOutboxFieldIsInTheJSONAndReadBack() throws {
        let event = OutboxRouter([OutboxTable(table: table)]).route([change(.insert, id: "1")]).events[0]
        let json = String(decoding: event.jsonBytes, as: UTF8.self)
        #expect(json.hasSuffix(#","tenant":null,"outbox":{"route":"Order","key":"o-1","payload":{"n":1}}}"#))
        #expect(json == event.jsonString)
        #expect(try ChangeEvent(json: try JSONParser.parse(json)) == event)
        // Events of other tables keep exactly the documented shape.
        #expect(!change(.insert, id: "1", table: "orders").jsonString.contains("outbox"))
    }

    @Test func routePlaceholder() throws {
        let event = OutboxRouter([OutboxTable(table: table)]).route([change(.insert, id: "1")]).events[0]
        let url = try EventTemplate(parsing: "https://hooks/{route}/{tenant|none}")
        #expect(url.rendered(event, as: .url) == "https://hooks/Order/none")
        #expect(url.rendered(change(.insert, id: "1", table: "orders"), as: .url) == "https://hooks//none")
        #expect(try EventTemplate(parsing: "{prefix}.{route}").rendered(change(.insert, id: "1", table: "orders"), as: .topicName, prefix: "p") == "p._none")
        #expect(try EventTemplate(parsing: "{route}").readsEventValues)
    }

    @Test func theStateMachineCarriesOutboxRowsToTheSaveThatCoversThem() throws {
        var machine = PipelineStateMachine<AuditLogCursor, ContinuousClock.Instant>(start: AuditLogCursor(), now: .now)
        let row = OutboxRow(table: table, key: ["id": .number("1")])
        var end = AuditLogCursor()
        end.batchProgress = AuditLogOrdering(transactionRank: 1, sequence: 1)
        var batch = SourceBatch<AuditLogCursor>(events: [change(.insert, id: "1")], end: end)
        batch.outboxRows = [row]
        let first = machine.read()
        #expect(machine.checkpointDue(now: .now, isFinal: false) == nil)  // read, not acknowledged: nothing deleted
        try machine.acknowledge(first, batch)
        let due = try #require(machine.checkpointDue(now: .now, isFinal: false))
        #expect(due.outboxRows == [row])
        // Acknowledged while the save runs: left for the next save.
        var later = batch
        later.outboxRows = [OutboxRow(table: table, key: ["id": .number("2")])]
        end.batchProgress = AuditLogOrdering(transactionRank: 1, sequence: 2)
        later.end = end
        try machine.acknowledge(machine.read(), later)
        machine.saved(due, now: .now)
        #expect(machine.checkpointDue(now: .now, isFinal: true)?.outboxRows == later.outboxRows)
    }
}
