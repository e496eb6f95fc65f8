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

@Suite("source.tables objects and mask_key in the configuration")
struct ColumnPolicyConfigTests {
    static let key = "0123456789abcdef0123456789abcdef"

    func parse(_ tables: String, extra: String = "", environment: [String: String] = ["SPILLWAY_MASK_KEY": key]) throws(ConfigError) -> SpillwayConfig {
        try SpillwayConfig.parse(yaml: """
            database: {url: postgres://h/db}
            source:
              tables:
            \(tables)
            \(extra)
            sinks: [{name: out, kind: file, path: x}]
            """, environment: environment)
    }

    func configError(_ tables: String, extra: String = "", environment: [String: String] = ["SPILLWAY_MASK_KEY": key]) -> ConfigError? {
        do {
            _ = try parse(tables, extra: extra, environment: environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func objectsAndPlainNamesMix() throws {
        let config = try parse("""
                - public.products
                - {name: public.users, columns: {exclude: [ssn]}, mask: {email: hash, phone: redact}}
                - name: Orders
                  columns: {include: [id, total]}
            """, extra: "  mask_key: ${SPILLWAY_MASK_KEY}")
        #expect(config.source.tables.map(\.description) == ["public.products", "public.users", "public.orders"])
        #expect(config.source.columnPolicies[users] == ColumnPolicy(columns: .exclude(["ssn"]), masks: ["email": .hash, "phone": .redact]))
        #expect(config.source.columnPolicies[QualifiedName(schema: "public", name: "orders")] == ColumnPolicy(columns: .include(["id", "total"])))
        #expect(config.source.columnPolicies[QualifiedName(schema: "public", name: "products")] == nil)
        #expect(config.source.maskKey == Self.key)
    }

    @Test func redactNeedsNoKey() throws {
        let config = try parse("    - {name: users, mask: {phone: redact}}", environment: [:])
        #expect(config.source.maskKey == nil)
        #expect(config.source.columnPolicies[users]?.masks == ["phone": .redact])
    }

    @Test(arguments: [
        ("    - {name: users, mask: {email: hash}}", "", "source.mask_key", "is required: source.tables[0].mask.email is hashed"),
        ("    - {name: users, mask: {email: hash}}", "  mask_key: short", "source.mask_key", "is shorter than 16 bytes"),
        ("    - {name: users, mask: {email: hash}}", "  mask_key: ${NOT_SET_ANYWHERE}", "source.mask_key",
         "reads ${NOT_SET_ANYWHERE}, which is not set in the environment"),
        ("    - {name: users, mask: {email: scramble}}", "", "source.tables[0].mask.email", "'scramble' is not a mask"),
        ("    - {name: users, columns: {exclude: [ssn]}, mask: {ssn: redact}}", "", "source.tables[0].mask.ssn",
         "column ssn is not sent at all (see columns), so there is nothing to mask"),
        ("    - {name: users, columns: {include: [id]}, mask: {email: redact}}", "", "source.tables[0].mask.email",
         "column email is not sent at all (see columns), so there is nothing to mask"),
        ("    - {name: users, columns: {include: [id], exclude: [ssn]}}", "", "source.tables[0].columns", "has both include and exclude"),
        ("    - {name: users, columns: {}}", "", "source.tables[0].columns", "needs include or exclude"),
        ("    - {name: users, columns: {include: []}}", "", "source.tables[0].columns.include", "is empty, so no column would be sent"),
        ("    - {name: users, columns: {exclude: [ssn, ssn]}}", "", "source.tables[0].columns.exclude[1]", "column ssn is listed twice"),
        ("    - {name: users, columns: {exlude: [ssn]}}", "", "source.tables[0].columns.exlude", "unknown key"),
        ("    - {name: users, colums: {exclude: [ssn]}}", "", "source.tables[0].colums", "unknown key"),
        ("    - {columns: {exclude: [ssn]}}", "", "source.tables[0].name", "is required"),
        ("    - {name: a.b.c}", "", "source.tables[0].name", "'a.b.c' is not a table name"),
        ("    - [users]", "", "source.tables[0]", "expected a table name or `{name: ..., columns: ..., mask: ...}`"),
        ("    - {name: users, mask: {a: redact}}\n    - {name: public.users, mask: {b: redact}}", "", "source.tables[1]",
         "table public.users has columns or masks listed twice"),
    ] as [(String, String, String, String)])
    func errors(_ tables: String, _ extra: String, _ key: String, _ problem: String) throws {
        let error = try #require(configError(tables, extra: extra))
        #expect(error.key == key)
        #expect(error.problem == problem)
        #expect(!error.fix.isEmpty)
    }

    @Test func theMaskKeyNeverShowsInAnError() throws {
        let error = try #require(configError("    - {name: users, mask: {email: hash}}", extra: "  mask_key: ${SPILLWAY_MASK_KEY}\n  poll_interval: soon"))
        #expect(error.key == "source.poll_interval")
        #expect(!error.description.contains(Self.key))
    }
}
