import Testing
@testable import SpillwayCore

/// The JSON text a value in PostgreSQL's text output format becomes, for a built-in type OID.
/// The value mapped from its text, after checking that mapping its bytes in place (a snapshot's path)
/// gives the same JSON.
private func mapped(_ text: String, oid: UInt32) throws -> String {
    let kind = try #require(PGTypeKind(builtinOID: oid), "OID \(oid) should be built in")
    let fromText = PGValueMapper.json(fromText: text, kind: kind)
    let fromBytes = Array(text.utf8).withUnsafeBufferPointer { PGValueMapper.json(fromText: $0, kind: kind) }
    #expect(fromBytes == fromText, "\(oid) \(text): the bytes and the text map alike")
    return JSONEncoding.string(fromText)
}

@Suite("PostgreSQL text values to JSON")
struct ValueMappingTests {
    @Test(arguments: [
        // bool
        (16, "t", "true"),
        (16, "f", "false"),
        (16, "true", "true"),
        (16, "false", "false"),
        // int2, int4, int8, oid: exact number literals
        (21, "-32768", "-32768"),
        (21, "32767", "32767"),
        (23, "2147483647", "2147483647"),
        (23, "-2147483648", "-2147483648"),
        (20, "9223372036854775807", "9223372036854775807"),
        (20, "-9223372036854775808", "-9223372036854775808"),
        (20, "0", "0"),
        (26, "4294967295", "4294967295"),
        // float4, float8: numbers, except what JSON cannot hold
        (700, "1.5", "1.5"),
        (700, "-0", "-0"),
        (701, "3.141592653589793", "3.141592653589793"),
        (701, "1e+308", "1e+308"),
        (701, "-1.5e-07", "-1.5e-07"),
        (701, "2.2250738585072014e-308", "2.2250738585072014e-308"),
        (700, "NaN", #""NaN""#),
        (701, "NaN", #""NaN""#),
        (701, "Infinity", #""Infinity""#),
        (701, "-Infinity", #""-Infinity""#),
        (700, "-Infinity", #""-Infinity""#),
        // numeric: exact strings
        (1700, "12.50", #""12.50""#),
        (1700, "0", #""0""#),
        (1700, "-0.001", #""-0.001""#),
        (1700, "NaN", #""NaN""#),
        (1700, "Infinity", #""Infinity""#),
        (1700, "123456789012345678901234567890", #""123456789012345678901234567890""#),
        (1700, "12345678901234567890.1234567890", #""12345678901234567890.1234567890""#),
        // text-like types: PostgreSQL's text form as a string
        (25, "hello \"world\"\n\\ é", #""hello \"world\"\n\\ é""#),
        (25, "", #""""#),
        (1043, "varchar value", #""varchar value""#),
        (1042, "ab   ", #""ab   ""#),
        (18, "x", #""x""#),
        (19, "pg_class", #""pg_class""#),
        (2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", #""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#),
        (1082, "2026-01-02", #""2026-01-02""#),
        (1083, "03:04:05.123456", #""03:04:05.123456""#),
        (1266, "03:04:05+05:30", #""03:04:05+05:30""#),
        (1186, "1 year 2 mons 3 days 04:05:06.5", #""1 year 2 mons 3 days 04:05:06.5""#),
        (1186, "-00:00:01", #""-00:00:01""#),
        (17, #"\xdeadbeef"#, #""\\xdeadbeef""#),
        (17, #"\x"#, #""\\x""#),
        (790, "$1,234.56", #""$1,234.56""#),
        (790, "-$0.99", #""-$0.99""#),
        (869, "192.168.0.1/24", #""192.168.0.1/24""#),
        (650, "10.0.0.0/8", #""10.0.0.0/8""#),
        (829, "08:00:2b:01:02:03", #""08:00:2b:01:02:03""#),
        // json, jsonb: nested, key order and number literals kept
        (114, #"{"b": 1, "a": [1, 2.50, {"c": null}], "b": 2}"#, #"{"b":1,"a":[1,2.50,{"c":null}],"b":2}"#),
        (3802, #"{"a": "x", "bb": 1e400, "ccc": [true, false]}"#, #"{"a":"x","bb":1e400,"ccc":[true,false]}"#),
        (3802, #""just a string""#, #""just a string""#),
        (3802, "12.50", "12.50"),
        (3802, "null", "null"),
        // timestamp without time zone: ISO 8601 with a T, no zone
        (1114, "2026-01-02 03:04:05", #""2026-01-02T03:04:05""#),
        (1114, "2026-01-02 03:04:05.123456", #""2026-01-02T03:04:05.123456""#),
        (1114, "infinity", #""infinity""#),
        (1114, "-infinity", #""-infinity""#),
        // timestamptz: UTC with Z
        (1184, "2026-01-02 03:04:05.123456+00", #""2026-01-02T03:04:05.123456Z""#),
        (1184, "2026-01-02 03:04:05+05:30", #""2026-01-01T21:34:05Z""#),
        (1184, "2026-01-02 03:04:05-08", #""2026-01-02T11:04:05Z""#),
        (1184, "infinity", #""infinity""#),
        (1184, "-infinity", #""-infinity""#),
    ] as [(UInt32, String, String)])
    func scalarValues(oid: UInt32, text: String, json: String) throws {
        #expect(try mapped(text, oid: oid) == json)
    }

    @Test func int8MaximumStaysAnExactNumberLiteral() throws {
        let value = PGValueMapper.json(fromText: "9223372036854775807", kind: try #require(PGTypeKind(builtinOID: 20)))
        #expect(value == .number("9223372036854775807"))
    }

    @Test func numericKeepsEveryDigitAsAString() throws {
        let thirtyDigits = "123456789012345678901234567890.000000000000000000000000000001"
        let value = PGValueMapper.json(fromText: thirtyDigits, kind: try #require(PGTypeKind(builtinOID: 1700)))
        #expect(value == .string(thirtyDigits))
    }

    @Test func invalidJSONTextFallsBackToAString() {
        #expect(PGValueMapper.json(fromText: "{not json", kind: .json) == .string("{not json"))
    }

    @Test func unexpectedTextForNumbersAndBooleansStaysAString() {
        #expect(PGValueMapper.json(fromText: "yes", kind: .boolean) == .string("yes"))
        #expect(PGValueMapper.json(fromText: "", kind: .integer) == .string(""))
        #expect(PGValueMapper.json(fromText: "1 2", kind: .float) == .string("1 2"))
        #expect(PGValueMapper.json(fromText: "[1]", kind: .integer) == .string("[1]"))
    }

    // MARK: Arrays

    @Test(arguments: [
        (1007, "{1,2,3}", "[1,2,3]"),
        (1005, "{-1,NULL,32767}", "[-1,null,32767]"),
        (1016, "{9223372036854775807,-9223372036854775808}", "[9223372036854775807,-9223372036854775808]"),
        (1007, "{}", "[]"),
        (1007, "{{1,2},{3,4}}", "[[1,2],[3,4]]"),
        (1007, "{{{1},{2}},{{3},{4}}}", "[[[1],[2]],[[3],[4]]]"),
        (1000, "{t,f,NULL}", "[true,false,null]"),
        (1021, "{1.5,NaN,Infinity}", #"[1.5,"NaN","Infinity"]"#),
        (1022, "{-Infinity,2.5e-05}", #"["-Infinity",2.5e-05]"#),
        (1231, "{1.50,NaN,-3,NULL}", #"["1.50","NaN","-3",null]"#),
        (1231, "{123456789012345678901234567890}", #"["123456789012345678901234567890"]"#),
        (1009, #"{plain,"with space","say \"hi\"","back\\slash",NULL,"NULL","","a,b","{c}"}"#,
         #"["plain","with space","say \"hi\"","back\\slash",null,"NULL","","a,b","{c}"]"#),
        (1009, #"{{a,b},{"c d",NULL}}"#, #"[["a","b"],["c d",null]]"#),
        (1009, "{}", "[]"),
        (1015, "{x,y}", #"["x","y"]"#),
        (2951, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", #"["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]"#),
        (1182, "{2026-01-02,infinity}", #"["2026-01-02","infinity"]"#),
        (3807, #"{"{\"a\": 1}","[1, 2.50]",NULL}"#, #"[{"a":1},[1,2.50],null]"#),
        (199, #"{"\"s\"",7}"#, #"["s",7]"#),
        (1185, #"{"2026-01-02 03:04:05+00","2026-01-01 23:00:00-02",infinity}"#,
         #"["2026-01-02T03:04:05Z","2026-01-02T01:00:00Z","infinity"]"#),
        (1115, #"{"2026-01-02 03:04:05"}"#, #"["2026-01-02T03:04:05"]"#),
        // Explicit bounds are not a plain array literal: the text is kept.
        (1007, "[0:1]={1,2}", #""[0:1]={1,2}""#),
        // Malformed literals are kept as text too.
        (1007, "{1,2", #""{1,2""#),
        (1009, #"{"unterminated}"#, #""{\"unterminated}""#),
        (1007, "{1,2}x", #""{1,2}x""#),
    ] as [(UInt32, String, String)])
    func arrayValues(oid: UInt32, text: String, json: String) throws {
        #expect(try mapped(text, oid: oid) == json)
    }

    @Test func arrayLiteralItems() {
        #expect(PGArrayLiteral.parse(#"{1,NULL,"NULL",{2,"x y"}}"#) == [
            .value("1"), .null, .value("NULL"), .nested([.value("2"), .value("x y")]),
        ])
        #expect(PGArrayLiteral.parse("{}") == [])
        #expect(PGArrayLiteral.parse("") == nil)
        #expect(PGArrayLiteral.parse("1,2") == nil)
    }

    // MARK: Type kinds

    @Test(arguments: [
        (16, PGTypeKind.boolean),
        (20, .integer), (21, .integer), (23, .integer), (26, .integer),
        (700, .float), (701, .float),
        (1700, .numeric),
        (114, .json), (3802, .json),
        (1184, .timestampWithTimeZone),
        (1114, .timestamp),
        (17, .text), (25, .text), (1043, .text), (2950, .text), (1082, .text), (1083, .text), (1186, .text),
        (790, .text),
        (1000, .array(element: .boolean)),
        (1005, .array(element: .integer)), (1007, .array(element: .integer)), (1016, .array(element: .integer)),
        (1021, .array(element: .float)), (1022, .array(element: .float)),
        (1231, .array(element: .numeric)),
        (3807, .array(element: .json)), (199, .array(element: .json)),
        (1185, .array(element: .timestampWithTimeZone)),
        (1115, .array(element: .timestamp)),
        (1009, .array(element: .text)), (2951, .array(element: .text)),
    ] as [(UInt32, PGTypeKind)])
    func builtinOIDs(oid: UInt32, kind: PGTypeKind) {
        #expect(PGTypeKind(builtinOID: oid) == kind)
    }

    @Test func unknownOIDNeedsTheCatalog() {
        #expect(PGTypeKind(builtinOID: 16_385) == nil)
        #expect(PGTypeKind(builtinOID: 0) == nil)
    }

    @Test func catalogKindForUserTypes() {
        // A user enum (category E), a composite (C), a range (R): text.
        #expect(PGTypeKind(oid: 16_385, category: "E", element: nil) == .text)
        #expect(PGTypeKind(oid: 16_386, category: "C", element: nil) == .text)
        #expect(PGTypeKind(oid: 16_387, category: "R", element: nil) == .text)
        // A user array whose element the catalog resolved.
        #expect(PGTypeKind(oid: 16_388, category: "A", element: .integer) == .array(element: .integer))
        #expect(PGTypeKind(oid: 16_389, category: "A", element: nil) == .text)
        #expect(PGTypeKind(oid: 16_390, category: "B", element: nil) == .boolean)
        // A built-in OID wins over whatever category the caller passed.
        #expect(PGTypeKind(oid: 23, category: "S", element: nil) == .integer)
    }

    @Test func userEnumAndUserArrayValues() {
        let mood = PGTypeKind(oid: 16_385, category: "E", element: nil)
        #expect(PGValueMapper.json(fromText: "happy", kind: mood) == .string("happy"))
        let moods = PGTypeKind(oid: 16_384, category: "A", element: mood)
        #expect(JSONEncoding.string(PGValueMapper.json(fromText: "{happy,\"very sad\"}", kind: moods))
            == #"["happy","very sad"]"#)
    }
}

@Suite("jsonb rows from the audit log")
struct JSONBNormalisationTests {
    static let orders = TableInfo(
        schema: "public", name: "orders",
        columns: [
            ColumnInfo(name: "id", kind: .integer, typeName: "int8"),
            ColumnInfo(name: "total", kind: .numeric, typeName: "numeric"),
            ColumnInfo(name: "prices", kind: .array(element: .numeric), typeName: "_numeric"),
            ColumnInfo(name: "placed_at", kind: .timestampWithTimeZone, typeName: "timestamptz"),
            ColumnInfo(name: "history", kind: .array(element: .timestampWithTimeZone), typeName: "_timestamptz"),
            ColumnInfo(name: "local_at", kind: .timestamp, typeName: "timestamp"),
            ColumnInfo(name: "note", kind: .text, typeName: "text"),
            ColumnInfo(name: "meta", kind: .json, typeName: "jsonb"),
            ColumnInfo(name: "flags", kind: .boolean, typeName: "bool"),
        ],
        primaryKey: ["id"]
    )

    @Test("record literals: quoting, doubled quotes, backslashes, NULL versus the empty string")
    func recordLiterals() {
        #expect(PGRecordLiteral.parse("(EUR,1.50)") == ["EUR", "1.50"])
        #expect(PGRecordLiteral.parse(#"("a b",,"say ""hi""","",x\,y)"#) == ["a b", nil, #"say "hi""#, "", "x,y"])
        #expect(PGRecordLiteral.parse(#"("(1,2)","{1,2}")"#) == ["(1,2)", "{1,2}"])
        #expect(PGRecordLiteral.parse(#"("a\\b")"#) == [#"a\b"#])
        #expect(PGRecordLiteral.parse("(,)") == [nil, nil])
        #expect(PGRecordLiteral.parse("EUR,1.50") == nil)
        #expect(PGRecordLiteral.parse(#"("open)"#) == nil)
    }

    @Test("a composite maps to an object by its fields' kinds, from text and from to_jsonb alike")
    func composites() throws {
        let price = PGTypeKind.composite(fields: [CompositeField(name: "currency", kind: .text), CompositeField(name: "amount", kind: .numeric)])
        let stamped = PGTypeKind.composite(fields: [CompositeField(name: "at", kind: .timestampWithTimeZone), CompositeField(name: "value", kind: price)])
        let expected: JSONValue = .object(["at": .string("2024-03-10T01:30:00Z"),
                                           "value": .object(["currency": .string("EUR"), "amount": .string("1.50")])])
        #expect(PGValueMapper.json(fromText: #"("2024-03-10 01:30:00+00","(EUR,1.50)")"#, kind: stamped) == expected)
        let viaJSONB = try JSONParser.parse(#"{"value": {"amount": 1.50, "currency": "EUR"}, "at": "2024-03-10T07:00:00+05:30"}"#)
        #expect(PGValueMapper.normalize(jsonbValue: viaJSONB, kind: stamped) == expected)
        #expect(PGValueMapper.json(fromText: "{\"(EUR,1.50)\",NULL}", kind: .array(element: price))
            == .array([.object(["currency": .string("EUR"), "amount": .string("1.50")]), .null]))
        #expect(PGValueMapper.json(fromText: "(EUR)", kind: price) == .string("(EUR)"), "a field count that does not match stays text")
    }

    @Test("rows: generated columns are left out; json columns the trigger kept as text keep duplicate keys")
    func generatedAndExactJSON() throws {
        let table = TableInfo(schema: "public", name: "t",
                              columns: [ColumnInfo(name: "id", kind: .integer, typeName: "int4"),
                                        ColumnInfo(name: "doc", kind: .json, typeName: "json"),
                                        ColumnInfo(name: "docb", kind: .json, typeName: "jsonb"),
                                        ColumnInfo(name: "total", kind: .numeric, typeName: "numeric", isGenerated: true)],
                              primaryKey: ["id"], exactJSONColumns: ["doc"])
        let stored = try row(#"{"id": 1, "doc": "{\"a\": 1, \"a\": 2}", "docb": "[1]", "total": 2}"#)
        let normalized = PGValueMapper.normalize(jsonbRow: stored, table: table)
        #expect(normalized.names == ["id", "doc", "docb"])
        #expect(normalized["doc"] == .object(JSONObject([("a", .number("1")), ("a", .number("2"))])))
        #expect(normalized["docb"] == .string("[1]"), "a jsonb string stays a string")
    }

    private func row(_ json: String) throws -> JSONObject {
        try #require(try JSONParser.parse(json).objectValue)
    }

    @Test func rowIsNormalisedAndPutInTableOrder() throws {
        // to_jsonb sorts keys by length, then bytewise; `legacy` is a column the table no longer has.
        let jsonb = try row("""
            {"id": 42, "meta": {"b": 1, "a": 2.0}, "note": null, "flags": true, "total": 12.50, "legacy": "kept", \
            "prices": [1.50, 2, null], "history": ["2026-01-01T00:00:00+01:00", null], \
            "local_at": "2026-01-02T03:04:05", "placed_at": "2026-01-02T03:04:05.123456+05:30"}
            """)
        let normalised = PGValueMapper.normalize(jsonbRow: jsonb, table: Self.orders)
        #expect(JSONEncoding.string(.object(normalised)) == """
            {"id":42,"total":"12.50","prices":["1.50","2",null],"placed_at":"2026-01-01T21:34:05.123456Z",\
            "history":["2025-12-31T23:00:00Z",null],"local_at":"2026-01-02T03:04:05","note":null,\
            "meta":{"b":1,"a":2.0},"flags":true,"legacy":"kept"}
            """)
    }

    @Test func droppedColumnsKeepTheirOrderAtTheEnd() throws {
        let jsonb = try row(#"{"zz": 1, "id": 7, "aa": 2}"#)
        let normalised = PGValueMapper.normalize(jsonbRow: jsonb, table: Self.orders)
        #expect(normalised.names == ["id", "zz", "aa"])
    }

    @Test func columnsMissingFromTheRowAreNotInvented() throws {
        let normalised = PGValueMapper.normalize(jsonbRow: try row(#"{"total": 1}"#), table: Self.orders)
        #expect(JSONEncoding.string(.object(normalised)) == #"{"total":"1"}"#)
    }

    @Test func withoutTableInfoTheRowIsUntouched() throws {
        let jsonb = try row(#"{"total": 12.50, "id": 1}"#)
        #expect(PGValueMapper.normalize(jsonbRow: jsonb, table: nil) == jsonb)
    }

    @Test(arguments: [
        (PGTypeKind.numeric, #"12.50"#, #""12.50""#),
        (.numeric, #""NaN""#, #""NaN""#),
        (.numeric, "1e400", #""1e400""#),
        (.numeric, "null", "null"),
        (.array(element: .numeric), "[1, 2.5, null]", #"["1","2.5",null]"#),
        (.array(element: .timestampWithTimeZone), #"["2026-01-02T03:04:05+01:00"]"#, #"["2026-01-02T02:04:05Z"]"#),
        (.timestampWithTimeZone, #""2026-01-02T03:04:05-08:00""#, #""2026-01-02T11:04:05Z""#),
        (.timestampWithTimeZone, #""infinity""#, #""infinity""#),
        (.timestamp, #""2026-01-02T03:04:05""#, #""2026-01-02T03:04:05""#),
        (.integer, "9223372036854775807", "9223372036854775807"),
        (.float, #""NaN""#, #""NaN""#),
        (.json, #"{"n": 1.50}"#, #"{"n":1.50}"#),
        (.text, #""x""#, #""x""#),
    ] as [(PGTypeKind, String, String)])
    func singleValues(kind: PGTypeKind, jsonb: String, expected: String) throws {
        let value = try JSONParser.parse(jsonb)
        #expect(JSONEncoding.string(PGValueMapper.normalize(jsonbValue: value, kind: kind)) == expected)
    }

    /// `to_jsonb` writes a 2-D `numeric[]` as nested arrays; the replication path (`json(fromText:)`) turns
    /// every element into a string, so the audit_log path must too, or the two sources disagree.
    @Test func multiDimensionalArraysAreNormalisedAtEveryLevel() throws {
        let numeric = try JSONParser.parse("[[1.50, 2], [3, null]]")
        #expect(JSONEncoding.string(PGValueMapper.normalize(jsonbValue: numeric, kind: .array(element: .numeric)))
            == #"[["1.50","2"],["3",null]]"#)
        #expect(JSONEncoding.string(PGValueMapper.json(fromText: "{{1.50,2},{3,NULL}}", kind: .array(element: .numeric)))
            == #"[["1.50","2"],["3",null]]"#)
        let times = try JSONParser.parse(#"[["2026-01-02T03:04:05+01:00"]]"#)
        #expect(JSONEncoding.string(PGValueMapper.normalize(jsonbValue: times, kind: .array(element: .timestampWithTimeZone)))
            == #"[["2026-01-02T02:04:05Z"]]"#)
    }

    // MARK: Keys

    @Test func singleColumnKey() throws {
        let key = PGValueMapper.key(of: try row(#"{"note": "x", "id": 42}"#), table: Self.orders)
        #expect(key == ["id": .number("42")])
    }

    @Test func compositeKeyFollowsKeyOrder() throws {
        let lines = TableInfo(
            schema: "public", name: "order_lines",
            columns: [
                ColumnInfo(name: "line", kind: .integer, typeName: "int4"),
                ColumnInfo(name: "order_id", kind: .integer, typeName: "int8"),
                ColumnInfo(name: "sku", kind: .text, typeName: "text"),
            ],
            primaryKey: ["order_id", "line"]
        )
        let key = PGValueMapper.key(of: try row(#"{"line": 3, "order_id": 42, "sku": "A-1"}"#), table: lines)
        #expect(JSONEncoding.string(.object(try #require(key))) == #"{"order_id":42,"line":3}"#)
    }

    @Test func noKeyWithoutPrimaryKeyTableOrRow() throws {
        var keyless = Self.orders
        keyless.primaryKey = []
        let data = try row(#"{"id": 42}"#)
        #expect(PGValueMapper.key(of: data, table: keyless) == nil)
        #expect(PGValueMapper.key(of: data, table: nil) == nil)
        #expect(PGValueMapper.key(of: nil, table: Self.orders) == nil)
        #expect(PGValueMapper.key(of: try row(#"{"note": "no id"}"#), table: Self.orders) == nil)
    }

    @Test func nullKeyValueIsKept() throws {
        #expect(PGValueMapper.key(of: try row(#"{"id": null}"#), table: Self.orders) == ["id": .null])
    }

    @Test func tableInfoHelpers() {
        #expect(Self.orders.qualifiedName == "public.orders")
        #expect(Self.orders.column(named: "total")?.typeName == "numeric")
        #expect(Self.orders.column(named: "nope") == nil)
    }
}
