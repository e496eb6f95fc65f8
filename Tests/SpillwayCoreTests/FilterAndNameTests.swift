import Testing
@testable import SpillwayCore

@Suite("Qualified table names")
struct QualifiedNameTests {
    @Test(arguments: [
        ("products", "public", "products"),
        ("public.products", "public", "products"),
        ("Sales.Products", "sales", "products"),
        ("SALES.ORDER_ITEMS", "sales", "order_items"),
        (#""Sales"."Order Items""#, "Sales", "Order Items"),
        (#""Sales".orders"#, "Sales", "orders"),
        (#"sales."Orders""#, "sales", "Orders"),
        (#""a""b""#, "public", #"a"b"#),
        (#""a.b""#, "public", "a.b"),
        ("t$1", "public", "t$1"),
        ("_x", "public", "_x"),
        // PostgreSQL folds only ASCII letters in unquoted identifiers (in a UTF-8 database): `Ärger` stays.
        ("Ärger", "public", "Ärger"),
        ("ÄRGER.Straße", "Ärger", "straße"),
    ])
    func parses(text: String, schema: String, name: String) throws {
        let parsed = try #require(QualifiedName(parsing: text))
        #expect(parsed == QualifiedName(schema: schema, name: name))
    }

    @Test(arguments: [
        "a.b.c", "", ".", ".a", "a.", "a..b", #""""#, #""".a"#, #""unterminated"#, #""a"b"#, #"a"b""#,
        "a b", "a-b", "a;drop", "public.products;",
    ])
    func rejects(text: String) {
        #expect(QualifiedName(parsing: text) == nil)
    }

    @Test func defaultSchemaCanBeChosen() {
        #expect(QualifiedName(parsing: "orders", defaultSchema: "sales") == QualifiedName(schema: "sales", name: "orders"))
        #expect(QualifiedName(parsing: "public.orders", defaultSchema: "sales") == QualifiedName(schema: "public", name: "orders"))
    }

    @Test func descriptionAndSQL() {
        let name = QualifiedName(schema: "Sales", name: #"Order "Items""#)
        #expect(name.description == #"Sales.Order "Items""#)
        #expect(name.sql == #""Sales"."Order ""Items""""#)
        #expect(QualifiedName(schema: "public", name: "products").sql == #""public"."products""#)
    }

    @Test func ordersByDescription() {
        let names = [
            QualifiedName(schema: "sales", name: "a"), QualifiedName(schema: "public", name: "z"),
            QualifiedName(schema: "public", name: "b"),
        ]
        #expect(names.sorted().map(\.description) == ["public.b", "public.z", "sales.a"])
    }

    @Test func sqlLiteralsDoubleSingleQuotes() {
        #expect(SQLText.literal("it's") == "'it''s'")
        #expect(SQLText.identifier(#"we"ird"#) == #""we""ird""#)
    }
}

@Suite("Event filters")
struct EventFilterTests {
    static func event(_ op: ChangeEvent.Operation, _ schema: String, _ table: String) -> ChangeEvent {
        ChangeEvent(id: "1-1", op: op, schema: schema, table: table, position: "1/1")
    }

    @Test func emptyFilterAcceptsEverything() {
        let filter = EventFilter()
        for op in ChangeEvent.Operation.allCases {
            #expect(filter.accepts(Self.event(op, "any", "table")))
        }
    }

    @Test func operationFilter() {
        let filter = EventFilter(operations: [.insert, .delete])
        #expect(filter.accepts(Self.event(.insert, "public", "products")))
        #expect(filter.accepts(Self.event(.delete, "public", "products")))
        #expect(!filter.accepts(Self.event(.update, "public", "products")))
        #expect(!filter.accepts(Self.event(.truncate, "public", "products")))
    }

    @Test func tableFilterMatchesSchemaAndName() {
        let filter = EventFilter(tables: [QualifiedName(schema: "public", name: "products")])
        #expect(filter.accepts(Self.event(.update, "public", "products")))
        #expect(!filter.accepts(Self.event(.update, "sales", "products")))
        #expect(!filter.accepts(Self.event(.update, "public", "orders")))
        #expect(!filter.accepts(Self.event(.update, "public", "Products")))
    }

    @Test func bothFiltersMustAccept() {
        let filter = EventFilter(tables: [QualifiedName(schema: "public", name: "products")], operations: [.insert])
        #expect(filter.accepts(Self.event(.insert, "public", "products")))
        #expect(!filter.accepts(Self.event(.update, "public", "products")))
        #expect(!filter.accepts(Self.event(.insert, "public", "orders")))
    }
}
