import Testing
@testable import SpillwayCore

/// A stand-in for HMAC: visibly derived from the value, so a test can tell what was hashed.
private let fakeHash: ColumnMasker.Hasher = { "h(" + String(decoding: $0, as: UTF8.self) + ")" }

private let users = QualifiedName(schema: "public", name: "users")

private func userEvent(op: ChangeEvent.Operation = .update) -> ChangeEvent {
    var event = ChangeEvent(
        id: "1-1", op: op, schema: "public", table: "users",
        key: JSONObject([("id", .integer(1))]),
        before: op == .insert ? nil : JSONObject([("id", .integer(1)), ("email", .string("a@x.io")), ("phone", .string("555")),
                                                  ("ssn", .string("123-45")), ("age", .integer(40))]),
        after: op == .delete ? nil : JSONObject([("id", .integer(1)), ("email", .string("b@x.io")), ("phone", .null),
                                                 ("ssn", .string("123-45")), ("age", .integer(41))]),
        position: "0/1")
    event.unchangedColumns = ["ssn"]
    return event
}

@Suite("Column exclusion and masking")
struct ColumnMaskingTests {
    let policy = ColumnPolicy(columns: .exclude(["ssn"]), masks: ["email": .hash, "phone": .redact])

    @Test func excludedColumnsLeaveEveryRowAndTheUnchangedList() {
        let masked = ColumnMasker(policies: [users: policy], hash: fakeHash).apply(userEvent())
        #expect(masked.before?.names == ["id", "email", "phone", "age"])
        #expect(masked.after?.names == ["id", "email", "phone", "age"])
        #expect(masked.unchangedColumns.isEmpty)
        #expect(!masked.jsonString.contains("123-45"))
        #expect(!masked.jsonString.contains("ssn"))
    }

    @Test func hashReplacesTheValueAndKeepsNull() {
        let masked = ColumnMasker(policies: [users: policy], hash: fakeHash).apply(userEvent())
        #expect(masked.before?["email"] == .string("h(a@x.io)"))
        #expect(masked.after?["email"] == .string("h(b@x.io)"))
        let hashedNull = ColumnMasker(policies: [users: ColumnPolicy(masks: ["phone": .hash])], hash: fakeHash).apply(userEvent())
        #expect(hashedNull.after?["phone"] == .null)
        #expect(hashedNull.before?["phone"] == .string("h(555)"))
        // A number hashes by its text.
        let age = ColumnMasker(policies: [users: ColumnPolicy(masks: ["age": .hash])], hash: fakeHash).apply(userEvent())
        #expect(age.after?["age"] == .string("h(41)"))
    }

    @Test func redactNullsTheValueAndNamesTheColumn() {
        let masked = ColumnMasker(policies: [users: policy], hash: fakeHash).apply(userEvent())
        #expect(masked.before?["phone"] == .null)
        #expect(masked.after?["phone"] == .null)
        #expect(masked.maskedColumns == ["phone"])
        #expect(masked.json.objectValue?["masked"] == .array([.string("phone")]))
        #expect(!masked.jsonString.contains("555"))
        // Read back from JSON (replay tools, dead letters).
        let decoded = try? ChangeEvent(json: masked.json)
        #expect(decoded?.maskedColumns == ["phone"])
    }

    @Test func keyColumns() {
        var event = userEvent()
        event.key = JSONObject([("email", .string("b@x.io")), ("id", .integer(1))])
        // A hashed key column stays in the key, hashed: one stable key per row.
        let hashed = ColumnMasker(policies: [users: ColumnPolicy(masks: ["email": .hash])], hash: fakeHash).apply(event)
        #expect(hashed.key == JSONObject([("email", .string("h(b@x.io)")), ("id", .integer(1))]))
        // Excluded or redacted key columns leave the key.
        let redacted = ColumnMasker(policies: [users: ColumnPolicy(masks: ["email": .redact])], hash: nil).apply(event)
        #expect(redacted.key == JSONObject([("id", .integer(1))]))
        let excluded = ColumnMasker(policies: [users: ColumnPolicy(columns: .exclude(["email"]))], hash: nil).apply(event)
        #expect(excluded.key == JSONObject([("id", .integer(1))]))
        // No key column left: no key.
        let none = ColumnMasker(policies: [users: ColumnPolicy(columns: .include(["age"]))], hash: nil).apply(event)
        #expect(none.key == nil)
    }

    @Test func includeKeepsOnlyTheListedColumns() {
        let masked = ColumnMasker(policies: [users: ColumnPolicy(columns: .include(["id", "age"]))], hash: nil).apply(userEvent())
        #expect(masked.after?.names == ["id", "age"])
        #expect(masked.before?.names == ["id", "age"])
        #expect(masked.key == JSONObject([("id", .integer(1))]))
    }

    @Test func insertsDeletesAndOtherTablesPassAsTheyAre() {
        let masker = ColumnMasker(policies: [users: policy], hash: fakeHash)
        let insert = masker.apply(userEvent(op: .insert))
        #expect(insert.before == nil)
        #expect(insert.after?["ssn"] == nil)
        let delete = masker.apply(userEvent(op: .delete))
        #expect(delete.after == nil)
        #expect(delete.before?["ssn"] == nil)
        var other = userEvent()
        other.table = "orders"
        #expect(masker.apply(other) == other)
        #expect(ColumnMasker(policies: [users: ColumnPolicy()], hash: nil).isEmpty)
    }

    @Test func withoutAHashFunctionAHashedColumnIsNullNotClear() {
        // Unreachable through the config (mask_key is required), but fails closed.
        let masked = ColumnMasker(policies: [users: ColumnPolicy(masks: ["email": .hash])], hash: nil).apply(userEvent())
        #expect(masked.after?["email"] == .null)
    }

    @Test func triggerArguments() {
        #expect(ColumnPolicy().triggerArguments == [])
        #expect(ColumnPolicy(masks: ["a": .hash]).triggerArguments == [])
        #expect(ColumnPolicy(columns: .exclude(["ssn", "x"])).triggerArguments == ["exclude", "ssn", "x"])
        #expect(ColumnPolicy(columns: .include(["id"])).triggerArguments == ["include", "id"])
    }
}
