import Testing
@testable import SpillwayCore

@Suite("ChangeEvent JSON form")
struct ChangeEventTests {
    static let update = ChangeEvent(
        id: "7712-104", op: .update, schema: "public", table: "products",
        key: ["id": .number("42")],
        before: ["id": .number("42"), "price": .string("12.50")],
        after: ["id": .number("42"), "price": .string("13.00")],
        txid: 7712, commitTime: "2026-11-25T10:00:00.123456Z", position: "7712/104", tenant: "org-1"
    )

    @Test func fieldNamesAndOrderAreTheContract() throws {
        let object = try #require(Self.update.json.objectValue)
        #expect(object.names == [
            "id", "op", "schema", "table", "key", "before", "after", "txid", "commit_time", "position", "tenant",
        ])
    }

    @Test func encodesAsOneCompactLine() {
        #expect(Self.update.jsonString == """
            {"id":"7712-104","op":"update","schema":"public","table":"products","key":{"id":42},\
            "before":{"id":42,"price":"12.50"},"after":{"id":42,"price":"13.00"},"txid":7712,\
            "commit_time":"2026-11-25T10:00:00.123456Z","position":"7712/104","tenant":"org-1"}
            """)
        #expect(Self.update.jsonBytes == Array(Self.update.jsonString.utf8))
    }

    @Test("the direct encoder writes byte for byte what encoding the JSON tree writes")
    func directEncodingMatchesTheTree() {
        var message = ChangeEvent(id: "0/1A-0", op: .message, schema: "message", table: "orders", position: "0/1A:0")
        message.message = .init(prefix: "orders", content: "{\"id\": 5}\n", isTransactional: true)
        var toast = Self.update
        toast.unchangedColumns = ["description", "photo"]
        toast.tenant = nil
        toast.txid = nil
        let quoted = ChangeEvent(id: "q\"1", op: .insert, schema: "Sales \\ Data", table: "t\u{1}", after: ["n": .array([.null, .bool(false)])],
                                 txid: UInt64.max, position: "p")
        for event in [Self.update, message, toast, quoted, ChangeEvent(id: "h-9", op: .truncate, schema: "s", table: "t", position: "h")] {
            var direct: [UInt8] = [0x20]  // appends after what is there
            event.writeJSON(into: &direct)
            #expect(direct == [0x20] + JSONEncoding.bytes(event.json), "\(event.id)")
            #expect(event.jsonBytes == JSONEncoding.bytes(event.json))
        }
    }

    @Test func absentFieldsAreNullNotMissing() {
        let event = ChangeEvent(id: "h-9", op: .truncate, schema: "s", table: "t", position: "history/9")
        #expect(event.jsonString == """
            {"id":"h-9","op":"truncate","schema":"s","table":"t","key":null,"before":null,"after":null,\
            "txid":null,"commit_time":null,"position":"history/9","tenant":null}
            """)
    }

    @Test func operationsUseLowerCaseNames() {
        #expect(ChangeEvent.Operation.allCases.map(\.rawValue) == ["insert", "update", "delete", "truncate", "message", "read"])
    }

    @Test func qualifiedTableAndCurrentRow() {
        #expect(Self.update.qualifiedTable == "public.products")
        #expect(Self.update.currentRow == Self.update.after)
        let delete = ChangeEvent(id: "1-1", op: .delete, schema: "public", table: "products",
                                 before: ["id": .number("1")], position: "1/1")
        #expect(delete.currentRow == ["id": .number("1")])
    }

    // MARK: Reading back

    @Test(arguments: [
        ChangeEventTests.update,
        ChangeEvent(id: "h-9", op: .truncate, schema: "s", table: "t", position: "history/9"),
        ChangeEvent(id: "18446744073709551615-1", op: .insert, schema: "Odd \"Schema\"", table: "tåble",
                    key: ["a": .number("1"), "b": .string("x")], after: ["b": .string("x"), "a": .number("1")],
                    txid: UInt64.max, position: "18446744073709551615/1", tenant: ""),
        ChangeEvent(id: "m", op: .message, schema: "", table: "", position: "0/16B3748"),
    ])
    func roundTripsThroughJSONText(event: ChangeEvent) throws {
        let parsed = try JSONParser.parse(event.jsonString)
        #expect(try ChangeEvent(json: parsed) == event)
        #expect(try ChangeEvent(json: event.json) == event)
    }

    @Test(arguments: [
        ("[]", "expected an object"),
        (#"{"op":"insert","schema":"s","table":"t","position":"p"}"#, "missing string field 'id'"),
        (#"{"id":1,"op":"insert","schema":"s","table":"t","position":"p"}"#, "missing string field 'id'"),
        (#"{"id":"x","schema":"s","table":"t","position":"p"}"#, "missing string field 'op'"),
        (#"{"id":"x","op":"upsert","schema":"s","table":"t","position":"p"}"#, "unknown op"),
        (#"{"id":"x","op":"insert","table":"t","position":"p"}"#, "missing string field 'schema'"),
        (#"{"id":"x","op":"insert","schema":"s","position":"p"}"#, "missing string field 'table'"),
        (#"{"id":"x","op":"insert","schema":"s","table":"t"}"#, "missing string field 'position'"),
        (#"{"id":"x","op":"insert","schema":"s","table":"t","position":"p","after":[1]}"#,
         "field 'after' must be an object or null"),
        (#"{"id":"x","op":"insert","schema":"s","table":"t","position":"p","key":"1"}"#,
         "field 'key' must be an object or null"),
    ])
    func rejectsWhatIsNotAnEvent(json: String, problem: String) throws {
        let value = try JSONParser.parse(json)
        let error = #expect(throws: ChangeEvent.DecodingError.self) { try ChangeEvent(json: value) }
        #expect(error?.problem == problem)
        #expect(error?.description == "not a Spillway change event: \(problem)")
    }

    @Test func missingOptionalFieldsReadAsNil() throws {
        let value = try JSONParser.parse(#"{"id":"x","op":"delete","schema":"s","table":"t","position":"p"}"#)
        let event = try ChangeEvent(json: value)
        #expect(event == ChangeEvent(id: "x", op: .delete, schema: "s", table: "t", position: "p"))
    }

    @Test("an event is a value: a copy changed in any field, nested ones included, leaves the original as it was")
    func copiesAreIndependent() {
        let original = Self.update
        var copy = original
        #expect(copy == original)
        #expect(copy.hashValue == original.hashValue)
        copy.after?["price"] = .string("99.00")
        copy.unchangedColumns.append("notes")
        copy.tenant = nil
        #expect(original.after?["price"] == .string("13.00"))
        #expect(original.unchangedColumns.isEmpty)
        #expect(original.tenant == "org-1")
        #expect(copy.after?["price"] == .string("99.00"))
        #expect(copy.unchangedColumns == ["notes"])
        #expect(copy != original)
        // Equal contents are equal events, however they were built.
        var rebuilt = ChangeEvent(id: original.id, op: original.op, schema: original.schema, table: original.table,
                                  key: original.key, before: original.before, after: original.after, txid: original.txid,
                                  commitTime: original.commitTime, position: original.position, tenant: "org-1")
        #expect(rebuilt == original)
        #expect(rebuilt.hashValue == original.hashValue)
        rebuilt.op = .delete
        #expect(rebuilt != original)
    }
}

extension ChangeEventTests {
    @Test func sameTableAndOperationComparesAllThree() {
        let insert = ChangeEvent(id: "1", op: .insert, schema: "public", table: "items", position: "1")
        var other = insert
        other.id = "2"
        #expect(insert.hasSameTableAndOperation(as: other))
        #expect(insert.hasSameTableAndOperation(as: insert))
        other.op = .update
        #expect(!insert.hasSameTableAndOperation(as: other))
        other.op = .insert
        other.table = "orders"
        #expect(!insert.hasSameTableAndOperation(as: other))
        other.table = "items"
        other.schema = "shop"
        #expect(!insert.hasSameTableAndOperation(as: other))
        other.schema = "public"
        #expect(insert.hasSameTableAndOperation(as: other))
    }
}
