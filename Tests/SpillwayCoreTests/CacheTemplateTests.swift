import Testing
@testable import SpillwayCore

@Suite("Cache invalidation plans")
struct CacheTemplateTests {
    @Test func anUpdateThatMovesARowInvalidatesBothPlacesOnce() throws {
        let templates = [try template("product:{key.id}:v1"), try template("products:{after.category_id}:*")]
        let move = event(.update, before: product(id: 7, category: 1), after: product(id: 7, category: 2))
        let plan = CacheInvalidation(events: [move]) { _ in templates }
        #expect(plan.keys == ["product:7:v1"])
        #expect(plan.patterns == ["products:2:*", "products:1:*"])

        let rename = event(.update, before: product(id: 7, category: 1), after: product(id: 7, category: 1, name: "New"))
        let same = CacheInvalidation(events: [rename, rename]) { _ in templates }
        #expect(same.keys == ["product:7:v1"])
        #expect(same.patterns == ["products:1:*"])
    }

    @Test func insertsAndDeletesInvalidateTheirRow() throws {
        let templates = [try template("product:{key.id}"), try template("products:{after.category_id}:*")]
        let plan = CacheInvalidation(events: [
            event(.insert, after: product(id: 1, category: 5)),
            event(.delete, before: product(id: 2, category: 6)),
        ]) { _ in templates }
        #expect(plan.keys == ["product:1", "product:2"])
        #expect(plan.patterns == ["products:5:*", "products:6:*"])
    }

    @Test func aPrimaryKeyChangeInvalidatesTheOldKeyToo() throws {
        let plan = CacheInvalidation(events: [event(.update, before: product(id: 1, category: 1), after: product(id: 2, category: 1))]) {
            _ in [try! template("product:{key.id}")]
        }
        #expect(plan.keys == ["product:2", "product:1"])
    }

    @Test func valuesCannotWidenAPattern() throws {
        let t = try template("products:{after.name}:*")
        let e = event(.insert, after: product(id: 1, category: 1, name: "a*b?[c]\\"))
        let plan = CacheInvalidation(events: [e]) { _ in [t] }
        #expect(plan.patterns == ["products:a\\*b\\?\\[c\\]\\\\:*"])
        // An exact key keeps the value as it is.
        #expect(CacheInvalidation(events: [e]) { _ in [try! template("p:{after.name}")] }.keys == ["p:a*b?[c]\\"])
    }

    @Test func aTruncateInvalidatesEverythingATemplateCanName() throws {
        let truncate = ChangeEvent(id: "1-1", op: .truncate, schema: "public", table: "products", position: "1/1", tenant: "acme")
        let plan = CacheInvalidation(events: [truncate]) { _ in
            [try! template("product:{key.id}:v[1]"), try! template("products:{after.category_id}:*"),
             try! template("tenant:{tenant}:all")]
        }
        #expect(plan.patterns == ["product:*:v\\[1\\]", "products:*:*"])
        #expect(plan.keys == ["tenant:acme:all"])
    }

    @Test func validationNamesTheMissingColumn() throws {
        #expect(try template("p:{after.category_id}:{key.id}").problem(with: productsTable) == nil)
        let missing = try #require(try template("p:{after.categry}").problem(with: productsTable))
        #expect(missing.contains("{after.categry} names column 'categry', which public.products does not have"))
        let notKey = try #require(try template("p:{key.name}").problem(with: productsTable))
        #expect(notKey.contains("not in the primary key"))
        var keyless = productsTable
        keyless.primaryKey = []
        #expect(try #require(try template("p:{key.id}").problem(with: keyless)).contains("has none"))
        #expect(throws: ConfigError.self) {
            try template("p:{row.nope}").validate(against: [productsTable], key: "sinks[0].keys.public.products[0]")
        }
    }

    @Test func channelsFallBackToTheOldImageThenToNull() throws {
        let t = try template("ch_{table}_{after.category_id}")
        #expect(t.channel(for: event(.delete, before: product(id: 1, category: 4))) == "ch_products_4")
        let truncate = ChangeEvent(id: "1", op: .truncate, schema: "public", table: "products", position: "1")
        #expect(t.channel(for: truncate) == "ch_products_null")
        #expect(try template("ch_{table}_{after.category_id|all}").channel(for: truncate) == "ch_products_all")
    }
}

@Suite("NOTIFY payloads")
struct NotifyPayloadTests {
    @Test func smallEventsTravelWhole() {
        let e = event(.insert, after: product(id: 1, category: 1))
        #expect(NotifyPayload.text(for: e) == e.jsonString)
    }

    @Test func bigEventsShrinkToAReference() throws {
        let big = String(repeating: "x", count: 9000)
        let e = event(.update, before: product(id: 1, category: 1, name: big), after: product(id: 1, category: 1, name: big + "y"))
        let payload = NotifyPayload.text(for: e)
        #expect(payload == #"{"id":"1-1","op":"update","schema":"public","table":"products","key":{"id":1}}"#)
        #expect(payload.utf8.count < NotifyPayload.limit)
    }

    @Test func theLimitIsStrict() throws {
        // Exactly at the limit is too big: PostgreSQL wants fewer than 8000 bytes.
        let e = event(.insert, after: product(id: 1, category: 1, name: ""))
        let size = e.jsonBytes.count
        #expect(NotifyPayload.text(for: e, limit: size) != e.jsonString)
        #expect(NotifyPayload.text(for: e, limit: size + 1) == e.jsonString)
        let hugeKey = ChangeEvent(id: "1", op: .delete, schema: "public", table: "t",
                                  key: ["id": .string(String(repeating: "k", count: 9000))], position: "1")
        #expect(NotifyPayload.text(for: hugeKey) == #"{"id":"1","op":"delete","schema":"public","table":"t","key":null}"#)
    }
}
