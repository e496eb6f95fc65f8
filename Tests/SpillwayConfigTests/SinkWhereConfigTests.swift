import Testing
import SpillwayApp
@testable import SpillwayCore

private func row(_ fields: [(String, JSONValue)]) -> JSONObject { JSONObject(fields) }

private func event(op: ChangeEvent.Operation = .update, schema: String = "public", table: String = "products",
                   after: JSONObject? = nil) -> ChangeEvent {
    ChangeEvent(id: "1-1", op: op, schema: schema, table: table, after: after, position: "0/1")
}

@Suite("Sink where and table globs in the configuration")
struct SinkWhereConfigTests {
    func config(_ sink: String) throws(ConfigError) -> SpillwayConfig {
        try SpillwayConfig.parse(yaml: """
            database: {url: postgres://h/db}
            source: {tables: [public.products, public.order_items, public.orders, sales.orders]}
            sinks:
              - {name: all, kind: file, path: a}
              - \(sink)
            """)
    }

    @Test func whereIsParsedPerSink() throws {
        let parsed = try config(#"{name: search, kind: file, path: b, where: "after.status == 'published'"}"#)
        #expect(parsed.sinks[0].filter.condition == nil)
        #expect(parsed.sinks[0].filter.acceptsEverything)
        let condition = try #require(parsed.sinks[1].filter.condition)
        #expect(condition.source == "after.status == 'published'")
        #expect(!parsed.sinks[1].filter.acceptsEverything)
        #expect(parsed.sinks[1].filter.accepts(event(after: row([("status", .string("published"))]))))
        #expect(!parsed.sinks[1].filter.accepts(event(after: row([("status", .string("draft"))]))))
    }

    @Test func whereErrorNamesTheKeyAndTheColumn() throws {
        do {
            _ = try config(#"{name: search, kind: file, path: b, where: "after.price > 10 && statu == 'x'"}"#)
            Issue.record("parsed")
        } catch {
            #expect(error.key == "sinks[1].where")
            #expect(error.problem == "column 21: unknown field 'statu'")
            #expect(error.description.hasPrefix("config key 'sinks[1].where': column 21: unknown field 'statu'. Fix: "))
        }
    }

    @Test func whereCombinesWithTablesAndOps() throws {
        let parsed = try config("{name: d, kind: file, path: b, tables: [public.products], ops: [update], where: 'after.price > 100'}")
        let filter = parsed.sinks[1].filter
        #expect(filter.accepts(event(after: row([("price", .integer(101))]))))
        #expect(!filter.accepts(event(after: row([("price", .integer(100))]))))
        #expect(!filter.accepts(event(op: .insert, after: row([("price", .integer(101))]))))
        #expect(!filter.accepts(event(table: "orders", after: row([("price", .integer(101))]))))
    }

    @Test func tableGlobs() throws {
        let parsed = try config("{name: orders, kind: file, path: b, tables: ['public.order_*', products]}")
        let filter = parsed.sinks[1].filter
        #expect(filter.accepts(event(table: "order_items")))
        #expect(filter.accepts(event(table: "order_")))
        #expect(filter.accepts(event(table: "products")))
        #expect(!filter.accepts(event(table: "orders")))
        #expect(!filter.accepts(event(schema: "sales", table: "order_items")))
        #expect(filter.tables.patterns.map(\.description) == ["public.order_*"])
    }

    @Test func globSyntax() throws {
        let any = try #require(TablePattern(parsing: "*.orders"))
        #expect(any.matches(QualifiedName(schema: "sales", name: "orders")))
        #expect(!any.matches(QualifiedName(schema: "sales", name: "orders2")))
        let one = try #require(TablePattern(parsing: "audit_?.ev*ts"))
        #expect(one.matches(QualifiedName(schema: "audit_1", name: "events")))
        #expect(one.matches(QualifiedName(schema: "audit_1", name: "evts")))
        #expect(!one.matches(QualifiedName(schema: "audit_12", name: "events")))
        // Folds like an unquoted identifier; the default schema is public.
        let folded = try #require(TablePattern(parsing: "Order*"))
        #expect(folded.matches(QualifiedName(schema: "public", name: "orders")))
        #expect(!folded.matches(QualifiedName(schema: "public", name: "Orders")))
        #expect(TablePattern(parsing: "public.orders") == nil)  // no wildcard: a plain name
        #expect(TablePattern(parsing: "a.b.c*") == nil)
        #expect(TablePattern(parsing: "a.-*") == nil)
        #expect(TablePattern.glob(Array("a*b*c"), Array("aXXbYYbZc")))
        #expect(!TablePattern.glob(Array("a*b*c"), Array("aXXbYYbZ")))
        #expect(TablePattern.glob(Array("**"), Array("")))
    }

    @Test func badGlobNamesTheEntry() throws {
        do {
            _ = try config("{name: o, kind: file, path: b, tables: ['public.order-*']}")
            Issue.record("parsed")
        } catch {
            #expect(error.key == "sinks[1].tables[0]")
        }
    }
}
