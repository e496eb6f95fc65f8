import SpillwayApp
import SpillwayCore
import Testing

@Suite("Sink filters from the config")
struct SinkFilterConfigTests {
    static func event(_ op: ChangeEvent.Operation, _ schema: String, _ table: String) -> ChangeEvent {
        ChangeEvent(id: "1-1", op: op, schema: schema, table: table, position: "1/1")
    }

    @Test func filterFromConfigMatchesParsedNames() throws {
        let config = try SpillwayConfig.parse(yaml: """
            database: {url: postgres://h/db}
            source: {tables: [products, '"Sales"."Orders"']}
            sinks: [{name: out, kind: file, path: x, tables: [Products, '"Sales"."Orders"'], ops: [update]}]
            """)
        let filter = try #require(config.sinks.first).filter
        #expect(filter.accepts(Self.event(.update, "public", "products")))
        #expect(filter.accepts(Self.event(.update, "Sales", "Orders")))
        #expect(!filter.accepts(Self.event(.update, "sales", "orders")))
        #expect(!filter.accepts(Self.event(.insert, "public", "products")))
    }
}
