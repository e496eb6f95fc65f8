import Testing
@testable import SpillwayCore

private let update = event(.update, before: product(id: 7, category: 1), after: product(id: 7, category: 2, name: "Pot"), txid: 9, sequence: 2)

@Suite("The template language: one parser, one brace rule, one rule for missing values")
struct EventTemplateTests {
    @Test func everyFieldRenders() throws {
        let t = try template("{id}|{schema}.{table}:{op}:{tenant}:{key.id}:{after.name}:{before.category_id}:{row.id}:{prefix}")
        #expect(t.render(update, as: .plain, prefix: "p") == "9-2|public.products:update:acme:7:Pot:1:7:p")
        #expect(t.fields == [.id, .schema, .table, .op, .tenant, .key("id"), .after("name"), .before("category_id"), .row("id"), .prefix])
        #expect(t.readsRow && !t.isPattern)
        #expect(try !template("{schema}.{table}:{tenant}").readsRow)
    }

    @Test func columnNamesMayHoldAnythingButBracesPipesAndQuotes() throws {
        let row: JSONObject = ["Order Id": .integer(5), "größe": .string("L")]
        let e = ChangeEvent(id: "1", op: .insert, schema: "s", table: "t", after: row, position: "1")
        #expect(try template("o:{after.Order Id}:{after.größe}").render(e, as: .plain) == "o:5:L")
    }

    // MARK: Braces

    @Test func bracesThatDoNotStartAPlaceholderAreText() throws {
        let json = try template(#"{"a": {"b": [1, {}]}, "c": "{ x }", "d": {key.id}}"#)
        #expect(json.fields == [.key("id")])
        #expect(json.render(update, as: .json) == #"{"a": {"b": [1, {}]}, "c": "{ x }", "d": 7}"#)
        #expect(try template("p:{key.id").render(update, as: .plain) == "p:{key.id", "an unclosed placeholder is text")
        #expect(try template("p:}").render(update, as: .plain) == "p:}")
        #expect(try template("a{b c}").placeholders.isEmpty)
    }

    @Test func aHashTagAroundAValueIsABraceAPlaceholderAndABrace() throws {
        #expect(try template("user:{{key.id}}:profile").render(update, as: .plain) == "user:{7}:profile")
    }

    @Test(arguments: [
        ("user:{{{key.id}}}", 6, "no longer escapes a brace"),
        ("{{literal-text}}", 1, "no longer escapes a brace"),
        ("{{}}", 1, "no longer escapes a brace"),
        ("x:{foo}", 3, "unknown placeholder '{foo}'"),
        ("{new.id}", 1, "unknown placeholder '{new.id}'"),
        ("{after}", 1, "unknown placeholder '{after}'"),
        ("ab{Tenant}", 3, "unknown placeholder '{Tenant}'"),
        ("{tenant|x}{aftr.slug}", 11, "unknown placeholder '{aftr.slug}'"),
    ])
    func refusedSpellingsNameTheirColumn(text: String, column: Int, problem: String) {
        #expect {
            _ = try EventTemplate(parsing: text)
        } throws: { error in
            guard let error = error as? EventTemplate.ParseError else { return false }
            return error.column == column && error.problem.contains(problem) && !error.fix.isEmpty
        }
    }

    @Test func unknownFieldsListTheKnownOnes() {
        do {
            _ = try EventTemplate(parsing: "x:{foo}")
            Issue.record("parsed")
        } catch {
            #expect(error.description == "column 3: 'x:{foo}' uses an unknown placeholder '{foo}'. Fix: use " + EventTemplate.Field.known)
            #expect(error.fix.contains("{key.COLUMN}") && error.fix.contains("{row.COLUMN}"))
        }
    }

    @Test func placeholderShapedTextNeedsAWordFirst() throws {
        #expect(try template("{1}{.x}{ tenant}{tenant }").placeholders.isEmpty)
        #expect(try template("{after.}").placeholders.isEmpty, "no column: not a placeholder")
    }

    // MARK: Missing values

    @Test func aRowFieldFromAnImageTheEventLacksIsMissing() throws {
        let insert = event(.insert, after: product(id: 1, category: 3))
        #expect(try template("{before.id}").render(insert, as: .plain) == nil)
        let delete = event(.delete, before: product(id: 1, category: 3))
        #expect(try template("c:{after.category_id}").render(delete, as: .plain) == nil)
        #expect(try template("c:{after.category_id}").render(delete, as: .plain, image: .previous) == "c:3")
        #expect(try template("c:{row.category_id}").render(delete, as: .plain) == "c:3")
        #expect(try template("c:{row.nope}").render(delete, as: .plain) == nil, "a column the row does not have")
        #expect(try template("c:{row.nope}").rendered(delete, as: .plain) == "c:null")
    }

    @Test func sqlNullAndNoTenantAreWrittenAsTheRenderingWritesNull() throws {
        let row = event(.insert, after: product(id: 1, category: nil), tenant: nil)
        let t = try template("{after.category_id}")
        let tenant = try template("{tenant}")
        #expect(t.render(row, as: .plain) == "null" && tenant.render(row, as: .plain) == "null")
        #expect(t.render(row, as: .glob) == "null")
        #expect(t.render(row, as: .url) == "" && tenant.render(row, as: .url) == "")
        #expect(t.render(row, as: .topicName) == "_none" && tenant.render(row, as: .topicName) == "_none")
        #expect(t.render(row, as: .json) == "null" && tenant.render(row, as: .json) == "null")
        #expect(try template(#""{tenant}""#).render(row, as: .json) == #""""#)
        #expect(try template("{tenant}").render(event(.insert, after: product(id: 1, category: 1), tenant: ""), as: .topicName) == "_none")
    }

    @Test func aFallbackReplacesAMissingValueInEveryRendering() throws {
        let row = event(.insert, after: product(id: 1, category: nil), tenant: nil)
        #expect(try template("t:{tenant|shared}:{after.category_id|none}").render(row, as: .plain) == "t:shared:none")
        #expect(try template("t.{tenant|no tenant}").render(row, as: .topicName) == "t.no_tenant")
        #expect(try template("/t/{tenant|a b}").render(row, as: .url) == "/t/a%20b")
        #expect(try template(#"{"t": {tenant|x}, "u": "{tenant|y}"}"#).render(row, as: .json) == #"{"t": "x", "u": "y"}"#)
        #expect(try template("{tenant|}").render(row, as: .topicName) == "_none", "an empty fallback is still empty")
        #expect(try template("{tenant|}").render(row, as: .plain) == "")
        #expect(try template("{before.id|new}").render(row, as: .plain) == "new", "a fallback covers a missing image too")
        #expect(try template("t:{tenant|shared}").render(update, as: .plain) == "t:acme", "present values win")
    }

    // MARK: Renderings

    @Test func jsonInsideAndOutsideStrings() throws {
        let row: JSONObject = ["id": .number("7"), "slug": .string("tea \"pot\"\\\n"), "price": .number("39.90"),
                               "tags": .array([.string("a")]), "gone": .null]
        let e = ChangeEvent(id: "727-4", op: .update, schema: "public", table: "products", key: ["id": .number("7")],
                            after: row, txid: 727, position: "727/4")
        let t = try template(#"{"slug": "{after.slug}", "id": {key.id}, "price": {after.price}, "tags": {after.tags}, "q": "{after.missing}", "n": {after.missing}, "g": "{after.gone}", "e": "\"{op}\""}"#)
        #expect(t.rendered(e, as: .json) == #"{"slug": "tea \"pot\"\\\n", "id": 7, "price": 39.90, "tags": ["a"], "q": "", "n": null, "g": "", "e": "\"update\""}"#)
        #expect(t.render(e, as: .json) == nil, "render (not rendered) refuses the missing column")
    }

    @Test func urlsPercentEncodeValuesNotTheTemplate() throws {
        let row: JSONObject = ["slug": .string("tea pot/ü?&")]
        let e = ChangeEvent(id: "1", op: .insert, schema: "public", table: "products", after: row, position: "1")
        #expect(try template("https://h/x/{table}/{after.slug}?q=a b").rendered(e, as: .url) == "https://h/x/products/tea%20pot%2F%C3%BC%3F%26?q=a b")
    }

    @Test func topicNamesReplaceWhatKafkaRefuses() throws {
        let e = ChangeEvent(id: "1", op: .insert, schema: "Sales Data", table: "größe", position: "1", tenant: "org/1")
        #expect(try template("{prefix}.{tenant}.{schema}.{table}.{op}").rendered(e, as: .topicName, prefix: "a b") == "a_b.org_1.Sales_Data.gr__e.insert")
    }

    @Test func globRenderingEscapesValuesOnly() throws {
        let e = event(.insert, after: product(id: 1, category: 1, name: "a*b?[c]\\"))
        #expect(try template("products:{after.name}:*").render(e, as: .glob) == "products:a\\*b\\?\\[c\\]\\\\:*")
        #expect(try template("p:{after.name}").render(e, as: .plain) == "p:a*b?[c]\\")
    }

    // MARK: Configured uses

    @Test func configuredUsesCheckWhatTheyCannotCarry() throws {
        #expect(throws: ConfigError.self) { try EventTemplate(parsing: "k:{prefix}", key: "sinks[0].keys", use: .cacheKey) }
        #expect(throws: ConfigError.self, "an event id names no cached row") {
            try EventTemplate(parsing: "product:{id}", key: "sinks[0].keys", use: .cacheKey)
        }
        #expect(throws: ConfigError.self) { try EventTemplate(parsing: "https://h/{prefix}", key: "sinks[0].url", use: .webhookURL) }
        _ = try EventTemplate(parsing: "{prefix}.{tenant|shared}.{table}", key: "sinks[0].topic", use: .kafkaTopic)
        do {
            _ = try EventTemplate(parsing: "ab{{{key.id}}}", key: "sinks[3].keys.public.products[0]", use: .cacheKey)
            Issue.record("parsed")
        } catch {
            #expect(error.key == "sinks[3].keys.public.products[0]")
            #expect(error.problem.contains("(column 3)") && error.fix.contains("{{key.id}}"))
        }
    }
}
