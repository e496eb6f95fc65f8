import Testing
import SpillwayApp
@testable import SpillwayCore

private let users = QualifiedName(schema: "public", name: "users")

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
