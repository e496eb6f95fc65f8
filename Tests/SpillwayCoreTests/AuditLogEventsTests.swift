import Testing
@testable import SpillwayCore

private let products = TableInfo(
    schema: "public", name: "products",
    columns: [
        ColumnInfo(name: "id", kind: .integer, typeName: "int8"),
        ColumnInfo(name: "name", kind: .text, typeName: "text"),
        ColumnInfo(name: "price", kind: .numeric, typeName: "numeric"),
        ColumnInfo(name: "updated_at", kind: .timestampWithTimeZone, typeName: "timestamptz"),
    ],
    primaryKey: ["id"]
)

private func ordersTable(schema: String) -> TableInfo {
    TableInfo(
        schema: schema, name: "orders",
        columns: [
            ColumnInfo(name: "id", kind: .integer, typeName: "int4"),
            ColumnInfo(name: "total", kind: .numeric, typeName: "numeric"),
        ],
        primaryKey: ["id"]
    )
}

/// jsonb text as `to_jsonb` stores it: keys sorted by length, numeric as a JSON number, timestamptz with offset.
private let oldRow = #"{"id": 42, "name": "Lamp", "price": 12.50, "updated_at": "2026-01-02T03:04:05.123456+00:00"}"#
private let newRow = #"{"id": 42, "name": "Lamp", "price": 13.00, "updated_at": "2026-01-02T05:00:00+02:00"}"#

private func auditRow(
    txid: UInt64? = 7712, sequence: Int64? = 104, auditID: String = "104", schema: String? = "public",
    table: String = "products", operation: String, oldData: String? = nil, newData: String? = nil,
    tenant: String? = "org-1", commitTime: String? = "2026-01-02T03:04:05.200000Z"
) -> AuditLogEvents.Row {
    AuditLogEvents.Row(
        txid: txid, sequence: sequence, auditID: auditID, schema: schema, table: table, operation: operation,
        oldData: oldData, newData: newData, tenant: tenant, commitTime: commitTime
    )
}

@Suite("Audit rows to change events")
struct AuditLogEventsTests {
    let directory = TableDirectory([products])

    @Test func insert() throws {
        let event = try AuditLogEvents.event(from: auditRow(operation: "INSERT", newData: oldRow), tables: directory)
        #expect(event.jsonString == """
            {"id":"7712-104","op":"insert","schema":"public","table":"products","key":{"id":42},"before":null,\
            "after":{"id":42,"name":"Lamp","price":"12.50","updated_at":"2026-01-02T03:04:05.123456Z"},\
            "txid":7712,"commit_time":"2026-01-02T03:04:05.200000Z","position":"7712/104","tenant":"org-1"}
            """)
    }

    @Test func insertIgnoresOldData() throws {
        let event = try AuditLogEvents.event(
            from: auditRow(operation: "INSERT", oldData: oldRow, newData: newRow), tables: directory)
        #expect(event.before == nil)
        #expect(event.after?["price"] == .string("13.00"))
    }

    @Test func update() throws {
        let event = try AuditLogEvents.event(
            from: auditRow(operation: "UPDATE", oldData: oldRow, newData: newRow), tables: directory)
        #expect(event.jsonString == """
            {"id":"7712-104","op":"update","schema":"public","table":"products","key":{"id":42},\
            "before":{"id":42,"name":"Lamp","price":"12.50","updated_at":"2026-01-02T03:04:05.123456Z"},\
            "after":{"id":42,"name":"Lamp","price":"13.00","updated_at":"2026-01-02T03:00:00Z"},\
            "txid":7712,"commit_time":"2026-01-02T03:04:05.200000Z","position":"7712/104","tenant":"org-1"}
            """)
    }

    @Test func updateTakesTheKeyFromTheNewRow() throws {
        let event = try AuditLogEvents.event(
            from: auditRow(operation: "UPDATE", oldData: #"{"id": 1}"#, newData: #"{"id": 2}"#), tables: directory)
        #expect(event.key == ["id": .number("2")])
    }

    @Test func deleteTakesTheKeyFromBeforeAndIgnoresNewData() throws {
        let event = try AuditLogEvents.event(
            from: auditRow(operation: "DELETE", oldData: oldRow, newData: newRow), tables: directory)
        #expect(event.jsonString == """
            {"id":"7712-104","op":"delete","schema":"public","table":"products","key":{"id":42},\
            "before":{"id":42,"name":"Lamp","price":"12.50","updated_at":"2026-01-02T03:04:05.123456Z"},\
            "after":null,"txid":7712,"commit_time":"2026-01-02T03:04:05.200000Z","position":"7712/104",\
            "tenant":"org-1"}
            """)
    }

    @Test func truncateHasNoRowsAndNoKey() throws {
        let event = try AuditLogEvents.event(
            from: auditRow(operation: "TRUNCATE", oldData: oldRow, newData: newRow), tables: directory)
        #expect(event.jsonString == """
            {"id":"7712-104","op":"truncate","schema":"public","table":"products","key":null,"before":null,\
            "after":null,"txid":7712,"commit_time":"2026-01-02T03:04:05.200000Z","position":"7712/104",\
            "tenant":"org-1"}
            """)
    }

    @Test(arguments: [
        ("I", ChangeEvent.Operation.insert), ("U", .update), ("D", .delete), ("T", .truncate),
        ("INSERT", .insert), ("UPDATE", .update), ("DELETE", .delete), ("TRUNCATE", .truncate),
        ("insert", .insert), ("d", .delete),
    ])
    func storedOperationNames(stored: String, op: ChangeEvent.Operation) throws {
        #expect(AuditLogEvents.operation(stored) == op)
        let event = try AuditLogEvents.event(
            from: auditRow(operation: stored, oldData: oldRow, newData: newRow), tables: directory)
        #expect(event.op == op)
    }

    @Test func unknownOperationNamesTheAuditRow() {
        let error = #expect(throws: AuditLogEvents.DecodingError.self) {
            try AuditLogEvents.event(from: auditRow(auditID: "981", operation: "MERGE", newData: oldRow), tables: directory)
        }
        #expect(error?.auditID == "981")
        #expect(error?.problem == "unknown operation 'MERGE'")
        #expect(error?.description == "audit row 981: unknown operation 'MERGE'")
        #expect(AuditLogEvents.operation("") == nil)
        #expect(AuditLogEvents.operation("UPSERT") == nil)
    }

    @Test func malformedRowDataNamesTheAuditRow() {
        let error = #expect(throws: AuditLogEvents.DecodingError.self) {
            try AuditLogEvents.event(from: auditRow(auditID: "77", operation: "INSERT", newData: #"{"id": 1"#),
                                     tables: directory)
        }
        #expect(error?.description == "audit row 77: invalid JSON at byte 8: unterminated object")
    }

    @Test func rowDataMustBeAnObject() {
        let error = #expect(throws: AuditLogEvents.DecodingError.self) {
            try AuditLogEvents.event(from: auditRow(auditID: "78", operation: "DELETE", oldData: "[1]"), tables: directory)
        }
        #expect(error?.description == "audit row 78: row data is not a JSON object")
    }

    @Test(arguments: [("", nil), (nil, nil), ("org-1", "org-1")] as [(String?, String?)])
    func emptyTenantIsNoTenant(stored: String?, tenant: String?) throws {
        let event = try AuditLogEvents.event(
            from: auditRow(operation: "INSERT", newData: oldRow, tenant: stored), tables: directory)
        #expect(event.tenant == tenant)
    }

    @Test func idAndPositionFormats() {
        #expect(AuditLogEvents.id(txid: 7712, sequence: 104) == "7712-104")
        #expect(AuditLogEvents.position(txid: 7712, sequence: 104) == "7712/104")
        #expect(AuditLogEvents.id(txid: UInt64.max, sequence: Int64.max) == "18446744073709551615-9223372036854775807")
        #expect(AuditLogEvents.historyID(id: "981") == "h-981")
        #expect(AuditLogEvents.historyPosition(id: "981") == "history/981")
    }

    @Test func historyRowWithoutTransactionID() throws {
        let row = auditRow(txid: nil, sequence: nil, auditID: "981", operation: "UPDATE",
                           oldData: oldRow, newData: newRow, tenant: nil, commitTime: nil)
        let event = try AuditLogEvents.event(from: row, tables: directory)
        #expect(event.id == "h-981")
        #expect(event.position == "history/981")
        #expect(event.txid == nil)
        #expect(event.commitTime == nil)
        #expect(event.tenant == nil)
        #expect(event.key == ["id": .number("42")])
    }

    @Test func sameRowAlwaysGivesTheSameEvent() throws {
        let row = auditRow(operation: "UPDATE", oldData: oldRow, newData: newRow)
        #expect(try AuditLogEvents.event(from: row, tables: directory).jsonString
            == AuditLogEvents.event(from: row, tables: directory).jsonString)
    }

    // MARK: Table lookup

    @Test func bareTableNameResolvesWhenUnique() throws {
        let tables = TableDirectory([products, ordersTable(schema: "sales")])
        let event = try AuditLogEvents.event(
            from: auditRow(schema: nil, table: "orders", operation: "I", newData: #"{"total": 9.90, "id": 5}"#),
            tables: tables)
        #expect(event.schema == "sales")
        #expect(event.table == "orders")
        #expect(JSONEncoding.string(.object(try #require(event.after))) == #"{"id":5,"total":"9.90"}"#)
        #expect(event.key == ["id": .number("5")])
    }

    @Test func ambiguousBareTableNameIsNotGuessed() throws {
        let tables = TableDirectory([ordersTable(schema: "public"), ordersTable(schema: "sales")])
        #expect(tables.lookup(schema: nil, table: "orders") == nil)
        #expect(tables.resolve(schema: nil, table: "orders") == .ambiguous(["public.orders", "sales.orders"]))
        // Guessing would hand one table's rows to the other, and skipping would lose them: the row is an error,
        // which holds the checkpoint.
        #expect(throws: AuditLogEvents.DecodingError.self) {
            try AuditLogEvents.event(
                from: auditRow(schema: nil, table: "orders", operation: "I", newData: #"{"total": 9.90, "id": 5}"#),
                tables: tables)
        }
    }

    @Test func partitionRowsAreNamedAfterTheCapturedTable() throws {
        var tables = TableDirectory([ordersTable(schema: "sales")])
        tables.add(alias: QualifiedName(schema: "sales", name: "orders_2026"), for: QualifiedName(schema: "sales", name: "orders"))
        for schema in ["sales", nil] as [String?] {
            let event = try AuditLogEvents.event(
                from: auditRow(schema: schema, table: "orders_2026", operation: "I", newData: #"{"total": 9.90, "id": 5}"#),
                tables: tables)
            #expect(event.qualifiedTable == "sales.orders")
            #expect(event.key == ["id": .number("5")])
            #expect(event.after?["total"] == .string("9.90"), "mapped with the captured table's types")
        }
        #expect(tables.resolve(schema: "public", table: "orders_2026") == .notCaptured)
    }

    @Test func uncapturedTableKeepsItsSchemaAndRow() throws {
        let event = try AuditLogEvents.event(
            from: auditRow(schema: "audit", table: "other", operation: "I", newData: #"{"n": 1.50}"#),
            tables: directory)
        #expect(event.schema == "audit")
        #expect(event.table == "other")
        #expect(event.after == ["n": .number("1.50")])
        #expect(event.key == nil)
    }

    @Test func tableDirectoryLookup() {
        let tables = TableDirectory([products, ordersTable(schema: "public"), ordersTable(schema: "sales")])
        #expect(tables.lookup(schema: "public", table: "products") == products)
        #expect(tables.lookup(schema: nil, table: "products") == products)
        #expect(tables.lookup(schema: "sales", table: "orders") == ordersTable(schema: "sales"))
        #expect(tables.lookup(schema: "sales", table: "products") == nil)
        #expect(tables.lookup(schema: nil, table: "missing") == nil)
        #expect(tables.tables.map(\.qualifiedName).sorted() == ["public.orders", "public.products", "sales.orders"])
    }
}

@Suite("Audit log cursor and ordering")
struct AuditLogCursorTests {
    @Test func orderingIsByTransactionRankThenSequence() {
        let a = AuditLogOrdering(transactionRank: 1, sequence: 5)
        let b = AuditLogOrdering(transactionRank: 2, sequence: 1)
        let c = AuditLogOrdering(transactionRank: 2, sequence: 3)
        #expect(a < b)
        #expect(b < c)
        #expect(!(c < b))
        #expect(!(b < b))
        #expect(b <= AuditLogOrdering(transactionRank: 2, sequence: 1))
        #expect([c, a, b].sorted() == [a, b, c])
        #expect([c, a, b].max() == c)
    }

    @Test func newConsumerStartsAtTheOrigin() {
        let withHistory = AuditLogCursor.start(includingHistory: true)
        #expect(withHistory == AuditLogCursor(completed: .origin, batch: nil, batchProgress: nil,
                                              historyProgress: nil, isHistoryDone: false))
        #expect(AuditLogCursor.start(includingHistory: false).isHistoryDone)
    }

    @Test func completeBatchMovesCompletedForward() throws {
        let batch = try #require(PGSnapshot("30:40:35"))
        var cursor = AuditLogCursor(
            completed: try #require(PGSnapshot("10:20:12")), batch: batch,
            batchProgress: AuditLogOrdering(transactionRank: 9, sequence: 8),
            historyProgress: .init(changedAt: "2026-01-02 03:04:05+00", id: "981"), isHistoryDone: true
        )
        cursor.completeBatch()
        #expect(cursor.completed == batch)
        #expect(cursor.batch == nil)
        #expect(cursor.batchProgress == nil)
        #expect(cursor.historyProgress == .init(changedAt: "2026-01-02 03:04:05+00", id: "981"))
        #expect(cursor.isHistoryDone)
    }

    @Test func completeBatchWithoutBatchKeepsCompleted() throws {
        let completed = try #require(PGSnapshot("10:20:12"))
        var cursor = AuditLogCursor(completed: completed, batchProgress: AuditLogOrdering(transactionRank: 1, sequence: 1))
        cursor.completeBatch()
        #expect(cursor.completed == completed)
        #expect(cursor.batch == nil)
        #expect(cursor.batchProgress == nil)
    }
}
