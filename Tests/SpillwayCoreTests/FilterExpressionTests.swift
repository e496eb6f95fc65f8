import Testing
@testable import SpillwayCore

private func row(_ fields: [(String, JSONValue)]) -> JSONObject { JSONObject(fields) }

/// An update of public.products by default, with a numeric price and a composite address.
private func event(op: ChangeEvent.Operation = .update, schema: String = "public", table: String = "products",
                   before: JSONObject? = nil, after: JSONObject? = nil, key: JSONObject? = nil,
                   tenant: String? = nil, txid: UInt64? = 42) -> ChangeEvent {
    ChangeEvent(id: "1-1", op: op, schema: schema, table: table, key: key, before: before, after: after,
                txid: txid, commitTime: "2026-11-25T10:00:00Z", position: "0/1", tenant: tenant)
}

private func matches(_ text: String, _ event: ChangeEvent) throws -> Bool {
    try FilterExpression(parsing: text).matches(event)
}

/// The error for `text`, which must not parse.
private func parseError(_ text: String) -> FilterSyntaxError? {
    do {
        _ = try FilterExpression(parsing: text)
        return nil
    } catch {
        return error
    }
}

@Suite("Filter expressions")
struct FilterExpressionTests {
    let published = event(before: row([("status", .string("draft"))]),
                          after: row([("id", .integer(7)), ("status", .string("published")), ("price", .number("120.50")),
                                      ("active", .bool(true)), ("note", .null),
                                      ("addr", .object(row([("city", .string("Oslo")), ("zip", .string("0150"))])))]),
                          key: row([("id", .integer(7))]), tenant: "acme")

    // MARK: Fields and literals

    @Test func eventFieldsByTheirJSONNames() throws {
        #expect(try matches("op == 'update'", published))
        #expect(try matches("schema == 'public' && table == 'products'", published))
        #expect(try matches("tenant == 'acme'", published))
        #expect(try matches("txid == 42", published))
        #expect(try matches("id == '1-1' && position == '0/1' && commit_time == '2026-11-25T10:00:00Z'", published))
        #expect(try matches("key.id == 7", published))
        #expect(try matches("after.status == 'published'", published))
        #expect(try matches("before.status == 'draft'", published))
        #expect(try !matches("op == 'insert'", published))
    }

    @Test func nestedPathsReachCompositeMembers() throws {
        #expect(try matches("after.addr.city == 'Oslo'", published))
        #expect(try !matches("after.addr.city == 'Bergen'", published))
        #expect(try matches("after.addr.street is null", published))
        // A path through a value that is not an object leads nowhere: null.
        #expect(try matches("after.status.x is null", published))
    }

    @Test func quotedNamesReachColumnsWithAnyName() throws {
        let e = event(after: row([("Order Id", .integer(5)), ("a\"b", .string("x"))]))
        #expect(try matches(#"after."Order Id" == 5"#, e))
        #expect(try matches(#"after."a""b" == 'x'"#, e))
    }

    @Test func stringLiteralsDoubleTheirQuote() throws {
        let e = event(after: row([("name", .string("it's"))]))
        #expect(try matches("after.name == 'it''s'", e))
    }

    @Test func booleanColumnsAndConstants() throws {
        #expect(try matches("after.active == true", published))
        #expect(try !matches("after.active == false", published))
        #expect(try matches("after.active != false", published))
        #expect(try matches("true", published))
        #expect(try !matches("false", published))
        #expect(try matches("!false && (true || false)", published))
    }

    @Test func issueExamples() throws {
        #expect(try matches("after.status == 'published' || before.status == 'published'", published))
        #expect(try matches("tenant in ['acme', 'globex']", published))
        #expect(try matches("op != 'delete' && after.price > 100", published))
        let unpublish = event(before: row([("status", .string("published"))]), after: row([("status", .string("draft"))]))
        #expect(try matches("after.status == 'published' || before.status == 'published'", unpublish))
        let delete = event(op: .delete, before: row([("price", .integer(500))]))
        #expect(try !matches("op != 'delete' && after.price > 100", delete))
    }

    // MARK: Precedence

    @Test func andBindsTighterThanOr() throws {
        // false || true && false  ==  false || (true && false)  ==  false
        #expect(try !matches("op == 'insert' || op == 'update' && tenant == 'x'", published))
        #expect(try matches("(op == 'insert' || op == 'update') && tenant == 'acme'", published))
        // true || false && false == true
        #expect(try matches("op == 'update' || op == 'insert' && tenant == 'x'", published))
    }

    @Test func notNegatesTheComparisonAfterIt() throws {
        #expect(try !matches("!after.price > 100", published))
        #expect(try matches("!after.price > 200", published))
        #expect(try matches("!op == 'insert' && tenant == 'acme'", published))  // (!(op == insert)) && ...
        #expect(try !matches("!(op == 'update' && tenant == 'acme')", published))
        #expect(try matches("!!(op == 'update')", published))
    }

    @Test func orIsLeftAssociativeAndShortCircuitFree() throws {
        #expect(try matches("false || false || true", published))
        #expect(try !matches("true && true && false", published))
    }

    // MARK: Null handling

    @Test func comparisonsWithNullAreFalseEvenNotEqual() throws {
        let insert = event(op: .insert, after: row([("status", .string("new"))]))
        // before is null for an insert: every comparison on it is false, != too.
        #expect(try !matches("before.status == 'new'", insert))
        #expect(try !matches("before.status != 'new'", insert))
        #expect(try !matches("before.status < 'z'", insert))
        #expect(try matches("!(before.status == 'new')", insert))
        // A null column and a missing column read alike.
        #expect(try !matches("after.note != 'x'", published))
        #expect(try !matches("after.missing != 'x'", published))
        #expect(try !matches("after.missing == after.note", published))
        // A null tenant.
        #expect(try !matches("tenant != 'acme'", event()))
    }

    @Test func isNullAndIsNotNull() throws {
        let insert = event(op: .insert, after: row([("status", .string("new"))]))
        #expect(try matches("before is null", insert))
        #expect(try matches("after is not null", insert))
        #expect(try matches("before.status is null", insert))
        #expect(try matches("after.note is null && after.missing is null", published))
        #expect(try matches("after.status is not null", published))
        #expect(try matches("tenant is null", event()))
        #expect(try !matches("tenant is not null", event()))
    }

    @Test func nullTakesPartInAListOnlyWhereWritten() throws {
        #expect(try matches("tenant in ['acme', null]", event()))
        #expect(try !matches("tenant in ['acme']", event()))
        #expect(try !matches("tenant not in ['acme']", event()))
        #expect(try !matches("tenant not in ['acme', null]", event()))
        #expect(try matches("tenant not in ['globex']", published))
        #expect(try !matches("tenant not in ['acme', 'globex']", published))
    }

    // MARK: Types

    @Test func valuesOfDifferentTypesAreUnequalAndUnordered() throws {
        let e = event(after: row([("code", .string("abc")), ("n", .integer(100)), ("flag", .bool(true))]))
        #expect(try !matches("after.code == 100", e))
        #expect(try matches("after.code != 100", e))
        #expect(try !matches("after.code > 5", e))
        #expect(try !matches("after.code <= 5", e))
        #expect(try !matches("after.n == 'abc'", e))
        #expect(try !matches("after.n == after.code", e))
        #expect(try matches("after.n != after.code", e))
        #expect(try !matches("after.flag == 1", e))
        #expect(try matches("after.flag != 'true'", e))
    }

    @Test func numericColumnsArriveAsStringsAndCompareAsNumbers() throws {
        // `numeric` is an exact string in the event ("39.90"): against a number it compares as a decimal.
        let e = event(before: row([("price", .string("99.99"))]), after: row([("price", .string("100.00")), ("nan", .string("NaN"))]))
        #expect(try matches("after.price > 99.999", e))
        #expect(try matches("after.price == 100", e))
        #expect(try matches("after.price in [5, 100]", e))
        #expect(try !matches("after.price in ['100']", e))  // a string item compares as text
        #expect(try matches("after.price == '100.00'", e))
        // Two fields that both read as decimals: as numbers (as text "100.00" < "99.99").
        #expect(try matches("after.price > before.price", e))
        // NaN is not a decimal: unordered against numbers.
        #expect(try !matches("after.nan > 0", e))
        #expect(try !matches("after.nan < 0", e))
        #expect(try !matches("after.nan == 0", e))
        // A string literal keeps text order even for decimal-looking strings.
        #expect(try matches("after.price < '99'", e))
    }

    @Test func stringsOrderByTheirBytes() throws {
        let e = event(after: row([("name", .string("Zebra")), ("lower", .string("apple")), ("accent", .string("é"))]))
        #expect(try matches("after.name < 'apple'", e))  // 'Z' (0x5A) before 'a' (0x61), as COLLATE "C"
        #expect(try matches("after.lower >= 'apple' && after.lower <= 'apple'", e))
        #expect(try matches("after.accent > 'z'", e))
        // Byte equality: a decomposed é is not the precomposed one.
        #expect(try !matches("after.accent == 'e\u{301}'", e))
    }

    @Test func booleansAndRowsHaveNoOrderAtRunTime() throws {
        let e = event(after: row([("flag", .bool(true)), ("doc", .object(row([("a", .integer(1))]))), ("other", .bool(false))]))
        #expect(try !matches("after.flag > after.other", e))
        #expect(try !matches("after.doc > after.flag", e))
        #expect(try matches("after.flag != after.other", e))
    }

    @Test func fieldAgainstField() throws {
        let e = event(before: row([("price", .number("99.99"))]), after: row([("price", .number("100.00"))]))
        #expect(try matches("after.price > before.price", e))
        #expect(try !matches("after.price == before.price", e))
        let same = event(before: row([("price", .number("100"))]), after: row([("price", .number("100.000"))]))
        #expect(try matches("after.price == before.price", same))
        let mixed = event(before: row([("price", .number("100"))]), after: row([("price", .string("100.000"))]))
        #expect(try matches("after.price == before.price", mixed))
        let text = event(before: row([("name", .string("b"))]), after: row([("name", .string("a"))]))
        #expect(try matches("after.name < before.name", text))
    }

    @Test func inMatchesByValue() throws {
        #expect(try matches("op in ['insert', 'update']", published))
        #expect(try !matches("op in ['delete']", published))
        #expect(try matches("op not in ['delete', 'truncate']", published))
        #expect(try matches("after.price in [1, 120.5, 3]", published))
        #expect(try matches("key.id in [7]", published))
        // A number and a string that reads as a decimal compare as numbers, whichever is the literal.
        #expect(try matches("key.id in ['7']", published))
        #expect(try !matches("key.id in ['7a']", published))
    }

    // MARK: Numeric exactness

    @Test(arguments: [true, false])
    func numericComparisonIsExact(asString: Bool) throws {
        // As a JSON number (integer and float columns) and as numeric's exact string.
        func price(_ text: String) -> ChangeEvent { event(after: row([("price", asString ? .string(text) : .number(text))])) }
        #expect(try matches("after.price > 12345678901234567890.4", price("12345678901234567890.5")))
        #expect(try !matches("after.price > 12345678901234567890.5", price("12345678901234567890.5")))
        #expect(try matches("after.price < 12345678901234567890.6", price("12345678901234567890.5")))
        // Beyond Double's 17 digits.
        #expect(try matches("after.price != 0.10000000000000000001", price("0.1")))
        #expect(try matches("after.price > 0.1", price("0.10000000000000000001")))
        #expect(try matches("after.price == 0.1", price("0.1000")))
        #expect(try matches("after.price == 100", price("1e2")))
        #expect(try matches("after.price == 100", price("100.00")))
        #expect(try matches("after.price == 0", price("-0.000")))
        #expect(try matches("after.price > -1", price("0")))
        #expect(try matches("after.price < -1.5", price("-2")))
        #expect(try matches("after.price > -2.5", price("-2")))
        #expect(try matches("after.price < 1e-300", price("1e-301")))
        #expect(try matches("after.price > 1e300", price("1e301")))
        #expect(try matches("after.price > 9", price("10")))
        #expect(try matches("after.price < 1E+3", price("999.999")))
        // Exact integers far past Int64.
        #expect(try matches("after.price > 99999999999999999999999999999", price("100000000000000000000000000000")))
        // numeric's special values arrive as strings: never a number, so never ordered against one.
        #expect(try !matches("after.price > 0", event(after: row([("price", .string("NaN"))]))))
        #expect(try !matches("after.price < 0", event(after: row([("price", .string("-Infinity"))]))))
    }

    @Test func decimalNormalization() {
        #expect(DecimalText.compare("1.50", "1.5") == 0)
        #expect(DecimalText.compare("0", "-0") == 0)
        #expect(DecimalText.compare("0.001", "1e-3") == 0)
        #expect(DecimalText.compare("-1", "-10") == 1)
        #expect(DecimalText.compare("123", "12.3e1") == 0)
        #expect(DecimalText.compare("1e999999999999999999999", "1e999999999999999999998") != -1)
        #expect(DecimalText.compare("abc", "1") == nil)
        #expect(DecimalText.compare("1.", "1") == 0)
        #expect(DecimalText.compare("1e", "1") == nil)
    }

    // MARK: Errors, each with its column

    @Test(arguments: [
        // (expression, column, start of the problem)
        ("after.status = 'x'", 14, "'=' is not an operator"),
        ("op == 'insert' & tenant == 'a'", 16, "'&' is not an operator"),
        ("op == 'insert' | tenant == 'a'", 16, "'|' is not an operator"),
        ("after.a <> 1", 9, "'<>' is not an operator"),
        ("op == 'insert' and tenant == 'a'", 16, "'and' is not an operator"),
        ("op == 'insert' or tenant == 'a'", 16, "'or' is not an operator"),
        ("after.status == 'x", 17, "the string that starts here has no closing '"),
        ("after.\"x == 1", 7, "the quoted name that starts here has no closing \""),
        ("after.\"\" == 1", 7, "an empty quoted name"),
        ("after.price > 1.", 15, "'1.' is not a number"),
        ("after.price > 1e", 15, "'1e' is not a number"),
        ("after.price > 12abc", 15, "'12a' is neither a number nor a name"),
        ("after.price > 1 # x", 17, "unexpected character '#'"),
        ("state == 'x'", 1, "unknown field 'state'"),
        ("\"x\" == 1", 1, "a path starts with an event field"),
        ("tenant.x == 1", 1, "tenant is text, it has no member 'x'"),
        ("after. == 1", 8, "expected a column name after '.'"),
        ("after.status", 1, "after.status alone is not a condition"),
        ("op == 'insert' && after.active", 19, "after.active alone is not a condition"),
        ("'x'", 1, "'x' alone is not a condition"),
        ("!after.active", 2, "after.active alone is not a condition"),
        ("1 == 1", 1, "1 == 1 compares two constants"),
        ("after.x == null", 12, "a comparison with null is never true"),
        ("after.x != null", 12, "a comparison with null is never true"),
        ("after == 1", 1, "'after' is a whole row, not a value"),
        ("key in [1]", 1, "'key' is a whole row, not a value"),
        ("op > 'insert'", 1, "op is an operation, which has no order for >"),
        ("after.flag < true", 14, "true is a boolean, which has no order for <"),
        ("op == 'upsert'", 7, "'upsert' is not an operation"),
        ("op in ['insert', 'upsert']", 18, "'upsert' is not an operation"),
        ("table == 5", 10, "table is text, but 5 is a number"),
        ("tenant in ['a', 5]", 17, "tenant is text, but 5 is a number"),
        ("txid == '5'", 9, "txid is a number, but '5' is text"),
        ("(op == 'insert') == 1", 1, "the left side of == is a condition, not a value"),
        ("after.a == (op == 'insert')", 12, "the right side of == is a condition, not a value"),
        ("(op == 'insert'", 16, "expected ')' to close the '(' at column 1"),
        ("op == 'insert')", 15, "expected &&, || or the end of the expression, found ')'"),
        ("op == ", 7, "expected a field, a literal, '!' or '(', found the end of the expression"),
        ("", 1, "expected a field, a literal, '!' or '(', found the end of the expression"),
        ("op == 'insert' &&", 18, "expected a field, a literal"),
        ("tenant in 'a'", 11, "expected '[' to start the list"),
        ("tenant in []", 11, "the list is empty, so `in` is never true"),
        ("tenant in ['a' 'b']", 16, "expected ',' or ']'"),
        ("tenant in [after.x]", 12, "a list holds literals only"),
        ("tenant not ['a']", 12, "expected in after not"),
        ("'a' in ['a']", 1, "'a' is a constant, so `in` is always the same"),
        ("(op == 'insert') in ['a']", 1, "`in` needs a field on its left, not a condition"),
        ("after.x is 5", 12, "expected null or not null after is"),
        ("after.x is not 5", 16, "expected null after is not"),
        ("5 is null", 1, "5 is a constant, so `is null` is always the same"),
        ("(op == 'insert') is null", 18, "`is null` needs a field, not a condition"),
        ("after.a == 1 not", 14, "'not' is not an operator here"),
    ] as [(String, Int, String)])
    func errorsPointAtTheirColumn(_ text: String, _ column: Int, _ problem: String) throws {
        let error = try #require(parseError(text), "'\(text)' parsed")
        #expect(error.column == column, "\(text): \(error)")
        #expect(error.problem.hasPrefix(problem), "\(text): \(error)")
        #expect(!error.fix.isEmpty)
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let error = try #require(parseError("after.name == 'é' && x == 1"))
        #expect(error.column == 22)
        #expect(error.problem == "unknown field 'x'")
    }

    @Test func unknownFieldListsTheKnownOnes() throws {
        let error = try #require(parseError("status == 'x'"))
        #expect(error.fix.contains("after.status"))
        #expect(error.fix.contains("tenant"))
    }
}
